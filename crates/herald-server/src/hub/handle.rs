//! The handle the hub keeps for one session: its bounded outbox and, for plain TCP, the socket's
//! write side, so the fan-out can write a frame straight into the kernel without waking the
//! session task (the gateway's task that owns the socket's read side).
//!
//! Overload policy: a frame is written at once when the outbox is empty and the socket takes it;
//! otherwise it is queued. A queue that would pass `outbox_frames` or `outbox_bytes` marks the
//! connection closed as a slow consumer (4002) and the frame is dropped for that session only:
//! one stalled reader never delays the others or grows memory without bound.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// What happened to one frame handed to [`SessionHandle::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// In the kernel's socket buffer already.
    Written,
    /// Queued for the session task to write.
    Queued,
    /// Not sent: the connection is closing (possibly because of this frame).
    Dropped,
}

/// What one [`SessionHandle::flush_direct`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// The backlog is empty.
    pub done: bool,
    /// Some bytes went out: the reader is draining, however slowly.
    pub progressed: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    pub frames: usize,
    pub bytes: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// Bytes of the queue's head already written.
    head_written: usize,
    /// Set once: the close code the session task must close with.
    close: Option<(u16, &'static str)>,
}

pub struct SessionHandle {
    direct: Option<OwnedWriteHalf>,
    limits: OutboxLimits,
    state: Mutex<State>,
    /// Wakes the session task: frames to flush or a close to perform.
    wake: Notify,
}

impl SessionHandle {
    /// `direct` is the socket's write half for plain TCP; `None` for transports (TLS) that only
    /// the session task may write to.
    pub fn new(direct: Option<OwnedWriteHalf>, limits: OutboxLimits) -> SessionHandle {
        SessionHandle { direct, limits, state: Mutex::new(State::default()), wake: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends one pre-encoded WebSocket frame. Never blocks and never waits.
    pub fn send(&self, frame: &Bytes) -> Sent {
        let mut st = self.lock();
        if st.close.is_some() {
            return Sent::Dropped;
        }
        let mut written = 0;
        if st.queue.is_empty() {
            if let Some(socket) = &self.direct {
                match socket.try_write(frame) {
                    Ok(n) if n == frame.len() => return Sent::Written,
                    Ok(n) => written = n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        st.close = Some((herald_proto::close::INTERNAL, "write failed"));
                        drop(st);
                        self.wake.notify_one();
                        return Sent::Dropped;
                    }
                }
            }
        }
        if st.queue.len() >= self.limits.frames || st.queued_bytes + frame.len() > self.limits.bytes {
            st.close = Some((herald_proto::close::SLOW_CONSUMER, "slow consumer: outbox full"));
            drop(st);
            self.wake.notify_one();
            return Sent::Dropped;
        }
        if st.queue.is_empty() {
            st.head_written = written;
        }
        st.queued_bytes += frame.len();
        st.queue.push_back(frame.clone());
        drop(st);
        self.wake.notify_one();
        Sent::Queued
    }

    /// Asks the session task to close with `code` (first caller wins).
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut st = self.lock();
        if st.close.is_none() {
            st.close = Some((code, reason));
        }
        drop(st);
        self.wake.notify_one();
    }

    pub fn close_requested(&self) -> Option<(u16, &'static str)> {
        self.lock().close
    }

    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Bytes the outbox holds before the session counts as a slow consumer.
    pub fn capacity_bytes(&self) -> usize {
        self.limits.bytes
    }

    pub fn has_backlog(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    pub fn direct(&self) -> Option<&OwnedWriteHalf> {
        self.direct.as_ref()
    }

    /// Drops the backlog of a slow consumer, all but a frame already partly written (the
    /// session must finish that one before its close frame, or the stream is garbled).
    pub fn abandon_backlog(&self) {
        let mut st = self.lock();
        let partial = if st.head_written > 0 { st.queue.pop_front() } else { None };
        st.queue.clear();
        st.queued_bytes = 0;
        if let Some(head) = partial {
            st.queued_bytes = head.len();
            st.queue.push_back(head);
        }
    }

    /// Direct transport: writes as much of the backlog as the socket takes now.
    pub fn flush_direct(&self) -> io::Result<Flushed> {
        let mut flushed = Flushed { done: true, progressed: false };
        let Some(socket) = &self.direct else { return Ok(flushed) };
        let mut st = self.lock();
        while let Some(head) = st.queue.front() {
            let head = head.clone();
            match socket.try_write(&head[st.head_written..]) {
                Ok(n) => {
                    flushed.progressed |= n > 0;
                    st.head_written += n;
                    if st.head_written == head.len() {
                        st.queue.pop_front();
                        st.queued_bytes -= head.len();
                        st.head_written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    flushed.done = false;
                    return Ok(flushed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(flushed)
    }

    /// Queued transport: takes the next frame to write (already-written prefix removed).
    pub fn pop_queued(&self) -> Option<Bytes> {
        let mut st = self.lock();
        let head = st.queue.pop_front()?;
        st.queued_bytes -= head.len();
        let skip = std::mem::take(&mut st.head_written);
        Some(head.slice(skip..))
    }
}
