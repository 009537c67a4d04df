//! Kernel receive timestamps: `SO_TIMESTAMPNS` on a socket, read back with `recvmsg`.
//!
//! With `SO_TIMESTAMPNS` set, the kernel stamps every incoming packet (CLOCK_REALTIME) when the
//! network stack takes it in, and a `recvmsg` on a TCP socket returns the stamp of the last
//! segment it copied out as an `SCM_TIMESTAMPNS` control message. That is when the data reached
//! this machine's receive path, before this tool had any chance to run: the server's share of the
//! delay, free of the load tool's own scheduling.

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;

/// `SO_TIMESTAMPNS` on Linux (also `SCM_TIMESTAMPNS`); the old, non-y2038 variant with a
/// `struct timespec` payload, which is 64-bit on 64-bit targets.
const SO_TIMESTAMPNS: libc::c_int = 35;

/// CLOCK_REALTIME now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    timespec_ns(&ts)
}

// time_t and c_long are i64 on 64-bit Linux, narrower elsewhere.
#[allow(clippy::unnecessary_cast)]
fn timespec_ns(ts: &libc::timespec) -> i64 {
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// Ask the kernel to stamp this socket's incoming packets.
pub fn enable(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: plain setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Control buffer for one `SCM_TIMESTAMPNS` (and some slack), aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 128]);

/// One non-blocking `recvmsg` into `buf`. Returns the bytes read (0 = end of stream) and the
/// kernel timestamp in ns (CLOCK_REALTIME) of the last segment read, if the kernel gave one.
/// `WouldBlock` comes back as an error, as from any non-blocking read.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<i64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = Control([0; 128]);
    // SAFETY: msghdr is plain data; every pointer we set points at live buffers above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: fd is an open socket owned by the caller; msg describes valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* helpers walk it within
    // those bounds, and we read the payload unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(timespec_ns(&ts));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}
