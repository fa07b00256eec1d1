"""What this machine starts: the embedded Redis, a worker, the sandbox, Flower; and stopping them."""
