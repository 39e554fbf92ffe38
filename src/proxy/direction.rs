//! One direction of one connection: read from `src`, pass through this
//! direction's toxics, write to `dst`.
//!
//! With no active toxic it is a plain copy loop with no channel and no
//! buffer held while idle (thousands of idle chat connections must stay
//! cheap). With toxics it runs them as a chain of stage tasks, and when the
//! proxy's toxic list changes it stops the chain, writes out whatever was
//! in flight in order, and builds the chain again: existing connections feel
//! added and removed toxics, as in Toxiproxy.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::Shutdown;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::link::ConnCtl;
use super::toxics::{Chunk, Flow, Memory, Pipe, Stage, Stream, Toxic, ToxicList};

/// Largest single read. Allocated only while data is arriving.
const READ_BUF: usize = 16 * 1024;
/// Chunks buffered between two stages; Toxiproxy uses unbuffered channels,
/// one slot keeps stages from lock-stepping without hoarding data.
const STAGE_SLOTS: usize = 1;

/// What to do after a mode (plain copy or toxic chain) returns.
enum Next {
    /// The toxic list changed: rebuild and continue.
    Rebuild,
    /// This direction is finished (its end was passed on as a FIN).
    Done,
    /// The connection must end.
    Kill,
}

type StageTask = JoinHandle<(Stage, Flow, Option<Pipe>)>;

pub(crate) struct Direction {
    stream: Stream,
    src: Arc<TcpStream>,
    dst: Arc<TcpStream>,
    toxics: watch::Receiver<ToxicList>,
    /// This direction's toxics when the current mode was built.
    built_from: Vec<Arc<Toxic>>,
    ctl: Arc<ConnCtl>,
    rng: StdRng,
    /// Per toxic id: the toxicity it was rolled at, and whether it is active here.
    rolls: HashMap<u64, (u32, bool)>,
    memories: HashMap<u64, Memory>,
    /// Data salvaged from a stopped chain, written before anything newer.
    flush: VecDeque<Bytes>,
    /// Read from `src` but not yet taken by the chain.
    pending: Option<Chunk>,
    eof: bool,
}

impl Direction {
    pub fn new(
        stream: Stream,
        src: Arc<TcpStream>,
        dst: Arc<TcpStream>,
        toxics: watch::Receiver<ToxicList>,
        ctl: Arc<ConnCtl>,
        rng: StdRng,
    ) -> Direction {
        Direction {
            stream,
            src,
            dst,
            toxics,
            built_from: Vec::new(),
            ctl,
            rng,
            rolls: HashMap::new(),
            memories: HashMap::new(),
            flush: VecDeque::new(),
            pending: None,
            eof: false,
        }
    }

    pub async fn run(mut self) {
        loop {
            let stages = self.stages();
            let next = if stages.is_empty() {
                self.copy().await
            } else {
                self.chain(stages).await
            };
            match next {
                Next::Rebuild if self.ctl.close_after_drain() => {
                    let _ = self.write_flush().await;
                    break;
                }
                Next::Rebuild => continue,
                Next::Done => return,
                Next::Kill => break,
            }
        }
        self.ctl.kill.cancel();
    }

    /// The active toxics for this direction. Toxicity is rolled once per
    /// connection and toxic (again only if its toxicity changes), from the
    /// connection's seeded generator.
    fn stages(&mut self) -> Vec<Stage> {
        let list = self.toxics.borrow_and_update().clone();
        self.built_from = list
            .iter()
            .filter(|t| t.stream == self.stream)
            .cloned()
            .collect();
        self.rolls.retain(|id, _| list.iter().any(|t| t.id == *id));
        self.memories
            .retain(|id, _| list.iter().any(|t| t.id == *id));
        let mut stages = Vec::new();
        for toxic in list.iter().filter(|t| t.stream == self.stream) {
            let bits = toxic.toxicity.to_bits();
            let active = match self.rolls.get(&toxic.id) {
                Some(&(rolled, active)) if rolled == bits => active,
                _ => {
                    let active = self.rng.random::<f32>() < toxic.toxicity;
                    self.rolls.insert(toxic.id, (bits, active));
                    active
                }
            };
            if active {
                stages.push(Stage {
                    toxic: toxic.clone(),
                    memory: self.memories.remove(&toxic.id).unwrap_or_default(),
                    rng: StdRng::seed_from_u64(self.rng.random()),
                });
            }
        }
        stages
    }

    /// No toxics: straight copy.
    async fn copy(&mut self) -> Next {
        if let Some(chunk) = self.pending.take() {
            self.flush.push_back(chunk.data);
        }
        if self.write_flush().await.is_err() {
            return Next::Kill;
        }
        if self.eof {
            return self.finish();
        }
        loop {
            let readable = tokio::select! {
                biased;
                _ = self.ctl.kill.cancelled() => return Next::Kill,
                r = self.toxics.changed() => match r {
                    Err(_) => return Next::Kill,
                    Ok(()) if self.changed_here() => return Next::Rebuild,
                    Ok(()) => false,
                },
                r = self.src.readable() => {
                    if r.is_err() {
                        return Next::Kill;
                    }
                    true
                }
            };
            if !readable {
                continue;
            }
            match self.read() {
                Ok(Some(chunk)) => {
                    if self.write(&chunk.data).await.is_err() {
                        return Next::Kill;
                    }
                }
                Ok(None) => {
                    self.eof = true;
                    return self.finish();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Next::Kill,
            }
        }
    }

    /// Toxics: src → stage → … → stage → dst.
    async fn chain(&mut self, stages: Vec<Stage>) -> Next {
        let stop = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(STAGE_SLOTS);
        let mut input = (!self.eof).then_some(tx);
        let mut tasks: Vec<StageTask> = Vec::new();
        for stage in stages {
            let (next_tx, next_rx) = mpsc::channel(STAGE_SLOTS);
            let pipe = Pipe::new(rx, next_tx, stop.clone());
            let ctl = self.ctl.clone();
            tasks.push(tokio::spawn(async move {
                let (stage, flow, pipe) = stage.run(pipe).await;
                match flow {
                    Flow::Close => ctl.request_close(),
                    Flow::Reset => ctl.request_reset(),
                    Flow::Ended | Flow::Stopped => {}
                }
                (stage, flow, pipe)
            }));
            rx = next_rx;
        }
        let mut output = rx;
        let next = loop {
            if self.write_flush().await.is_err() {
                break Next::Kill;
            }
            let reading = input.is_some() && self.pending.is_none();
            tokio::select! {
                biased;
                _ = self.ctl.kill.cancelled() => break Next::Kill,
                r = self.toxics.changed() => match r {
                    Err(_) => break Next::Kill,
                    Ok(()) if self.changed_here() => break Next::Rebuild,
                    Ok(()) => {}
                },
                chunk = output.recv() => match chunk {
                    Some(chunk) => {
                        if self.write(&chunk.data).await.is_err() {
                            break Next::Kill;
                        }
                    }
                    // Every stage has ended: the input ended or a toxic closed.
                    None if self.ctl.close_after_drain() => break Next::Kill,
                    None => break self.finish(),
                },
                permit = reserve(&input), if self.pending.is_some() => match permit {
                    Some(permit) => {
                        permit.send(self.pending.take().expect("guarded"));
                    }
                    // The first stage quit reading (it closed or reset).
                    None => {
                        self.pending = None;
                        input = None;
                    }
                },
                r = self.src.readable(), if reading => {
                    if r.is_err() {
                        break Next::Kill;
                    }
                    match self.read() {
                        Ok(Some(chunk)) => self.pending = Some(chunk),
                        Ok(None) => {
                            self.eof = true;
                            input = None;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => break Next::Kill,
                    }
                }
            }
        };
        stop.cancel();
        if matches!(next, Next::Rebuild) {
            self.salvage(tasks, output).await;
        } else {
            for task in tasks {
                task.abort();
            }
        }
        next
    }

    /// Collects a stopped chain's data, oldest first: what reached the end,
    /// then from the last stage back to the first, each stage's held chunks
    /// before the ones still queued in front of it.
    async fn salvage(&mut self, tasks: Vec<StageTask>, mut output: mpsc::Receiver<Chunk>) {
        let mut stopped = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Ok((stage, _, pipe)) = task.await {
                self.memories.insert(stage.toxic.id, stage.memory);
                stopped.push(pipe);
            }
        }
        while let Ok(chunk) = output.try_recv() {
            self.flush.push_back(chunk.data);
        }
        for mut pipe in stopped.into_iter().rev().flatten() {
            self.flush.extend(pipe.held.drain(..).map(|c| c.data));
            while let Ok(chunk) = pipe.input.try_recv() {
                self.flush.push_back(chunk.data);
            }
        }
    }

    /// Whether this direction's toxics changed. A change to the other
    /// direction's toxics must not stop this chain, which would release the
    /// data its latency toxic is holding early.
    fn changed_here(&mut self) -> bool {
        let list = self.toxics.borrow_and_update();
        let mine = list.iter().filter(|t| t.stream == self.stream);
        !mine
            .map(Arc::as_ptr)
            .eq(self.built_from.iter().map(Arc::as_ptr))
    }

    /// Passes the end of the stream on as a FIN (half-close): the other
    /// direction keeps going until its own end.
    fn finish(&mut self) -> Next {
        let _ = SockRef::from(&*self.dst).shutdown(Shutdown::Write);
        Next::Done
    }

    /// One read, into a buffer allocated only now that data is waiting.
    fn read(&self) -> io::Result<Option<Chunk>> {
        let mut buf = BytesMut::with_capacity(READ_BUF);
        let n = self.src.try_read_buf(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        // A small read would pin the whole buffer while it waits in a toxic.
        let data = if n < READ_BUF / 4 {
            Bytes::copy_from_slice(&buf)
        } else {
            buf.freeze()
        };
        Ok(Some(Chunk {
            data,
            at: Instant::now(),
        }))
    }

    async fn write_flush(&mut self) -> Result<(), ()> {
        while let Some(data) = self.flush.pop_front() {
            self.write(&data).await?;
        }
        Ok(())
    }

    /// Writes all of `data` unless the connection is killed meanwhile (a
    /// peer that stops reading must not keep a disabled proxy's link alive).
    async fn write(&self, mut data: &[u8]) -> Result<(), ()> {
        while !data.is_empty() {
            match self.dst.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::select! {
                        biased;
                        _ = self.ctl.kill.cancelled() => return Err(()),
                        r = self.dst.writable() => r.map_err(drop)?,
                    }
                }
                Err(_) => return Err(()),
            }
        }
        Ok(())
    }
}

/// A slot in the chain's first channel. Owned (one sender clone) so the
/// select loop may drop the input while a reservation is pending.
async fn reserve(input: &Option<mpsc::Sender<Chunk>>) -> Option<mpsc::OwnedPermit<Chunk>> {
    match input {
        Some(tx) => tx.clone().reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}
