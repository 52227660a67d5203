//! `redlock`: run a command under a distributed lock (work in progress).

fn main() {}
