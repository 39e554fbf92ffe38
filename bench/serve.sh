# Sourced by the bench scripts: `serve BINARY USERS` starts `reconnoiter
# serve` in the current directory, seeded as the scenarios expect (USERS
# users in USERS/10 conversations of 10, seed 1), and sets server_pid and
# server_url once it listens.
serve() {
  "$1" serve --listen 127.0.0.1:0 --db chat.db --users "$2" \
    --conversations $(($2 / 10)) --members 10 --seed 1 > srv.out 2>/dev/null &
  server_pid=$!
  for _ in $(seq 100); do grep -q listening srv.out && break; sleep 0.1; done
  server_url=http://$(sed -n 's/listening on \(\S*\).*/\1/p' srv.out | head -1)
}
