//! Native Engine.IO v4 / Socket.IO v5 client over WebSocket.
