//! Large IO buffers lent to connections only while they have bytes to move.
//!
//! A server connection reads and writes through 64 KiB buffers (fewer system calls under load), but
//! most connections of a busy server are idle at any moment: 2,000 idle HTTP/2 connections that each
//! kept their own read buffer held 128 MB between them. A connection takes a buffer when bytes
//! arrive or leave and gives it back as soon as it has nothing left in it (a read that found the
//! socket dry, a write that went out whole); a few returned buffers are kept for the next taker, so a
//! busy server does not allocate per read.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBuf, ReadBufCursor};

/// The size of every buffer lent here.
pub(crate) const BUFFER_SIZE: usize = 64 * 1024;

/// At most this many returned buffers are kept (4 MiB); more are freed.
const KEPT: usize = 64;

/// Zero-filled read buffers (readers want initialised memory) and empty write buffers.
static READS: Pool<Box<[u8]>> = Pool::new();
static WRITES: Pool<Vec<u8>> = Pool::new();

struct Pool<T> {
    kept: Mutex<Vec<T>>,
}

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool {
            kept: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Option<T> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give(&self, buffer: T) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT {
            kept.push(buffer);
        }
    }
}

/// A read buffer of 64 KiB of initialised bytes.
pub fn take_read_buffer() -> Box<[u8]> {
    READS
        .take()
        .unwrap_or_else(|| vec![0; BUFFER_SIZE].into_boxed_slice())
}

/// Returns a buffer from [`take_read_buffer`] (an empty one, or one of another size, is dropped).
pub fn give_read_buffer(buffer: Box<[u8]>) {
    if buffer.len() == BUFFER_SIZE {
        READS.give(buffer);
    }
}

/// An empty write buffer with room for [`BUFFER_SIZE`] bytes.
pub(crate) fn take_write_buffer() -> Vec<u8> {
    WRITES
        .take()
        .unwrap_or_else(|| Vec::with_capacity(BUFFER_SIZE))
}

/// Returns a write buffer; one that grew past [`BUFFER_SIZE`] (or never got its room) is dropped.
pub(crate) fn give_write_buffer(mut buffer: Vec<u8>) {
    if buffer.capacity() == BUFFER_SIZE {
        buffer.clear();
        WRITES.give(buffer);
    }
}

/// Reads in chunks through a lent read buffer: a chunk of up to [`BUFFER_SIZE`] bytes from the IO,
/// handed on as the HTTP stack asks for it. The buffer is held only while it has bytes to hand on:
/// a read that finds the IO dry (or failed) gives it back.
#[derive(Debug, Default)]
pub(crate) struct ChunkedRead {
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ChunkedRead {
    /// Whether every byte read was handed on.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether it holds a lent buffer.
    #[cfg(test)]
    pub(crate) fn holds_buffer(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Reads the next chunk from `io`; the bytes it brought (none at the end of the stream). Call
    /// only when [`is_empty`](Self::is_empty).
    pub(crate) fn poll_fill<T: Read + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&[u8]>> {
        if self.buffer.is_empty() {
            self.buffer = take_read_buffer();
        }
        let mut read = ReadBuf::new(&mut self.buffer);
        match Pin::new(io).poll_read(cx, read.unfilled()) {
            Poll::Ready(Ok(())) => {}
            other => {
                // Dry (or failed): an idle connection holds no read buffer.
                self.release();
                return other.map_ok(|()| &[][..]);
            }
        }
        let filled = read.filled().len();
        (self.start, self.end) = (0, filled);
        Poll::Ready(Ok(&self.buffer[..filled]))
    }

    /// Hands on as much of what is left of the last chunk as `buf` takes.
    pub(crate) fn hand_on(&mut self, buf: &mut ReadBufCursor<'_>) {
        let n = buf.remaining().min(self.end - self.start);
        buf.put_slice(&self.buffer[self.start..self.start + n]);
        self.start += n;
    }

    /// Gives the buffer back; anything not handed on is dropped.
    pub(crate) fn release(&mut self) {
        give_read_buffer(std::mem::take(&mut self.buffer));
        (self.start, self.end) = (0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_only_of_the_lent_size() {
        let read = take_read_buffer();
        assert_eq!(read.len(), BUFFER_SIZE);
        let address = read.as_ptr();
        give_read_buffer(read);
        give_read_buffer(vec![0; 10].into_boxed_slice());
        // Tests run in parallel: another test may take the returned buffer first.
        let again = take_read_buffer();
        assert_eq!(again.len(), BUFFER_SIZE);
        let _ = address;

        let mut write = take_write_buffer();
        write.extend_from_slice(b"held");
        give_write_buffer(write);
        let write = take_write_buffer();
        assert!(write.is_empty(), "a returned write buffer comes back empty");
        assert_eq!(write.capacity(), BUFFER_SIZE);
    }
}
