//! A server's memory and CPU time, from /proc; and child processes that die with us.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{anyhow, Context, Result};

/// Resident set size in kB (`VmRSS` in /proc/PID/status).
pub fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Open file descriptors of a process (entries of /proc/PID/fd).
pub fn open_fds(pid: u32) -> Result<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("reading /proc/{pid}/fd"))?;
    Ok(dir.count() as u64)
}

/// User + system CPU time of the whole process (all threads), in milliseconds.
pub fn cpu_ms(pid: u32) -> Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| anyhow!("odd /proc/{pid}/stat field {}", i + 3))
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(ticks as f64 * 1000.0 / clock_ticks_per_second())
}

/// CPU time of several processes, in ms by PID.
#[derive(Debug, Clone, Default)]
pub struct CpuSnap(pub HashMap<u32, f64>);

impl CpuSnap {
    /// The processes that cannot be read (gone) are left out.
    pub fn read(pids: impl IntoIterator<Item = u32>) -> CpuSnap {
        CpuSnap(pids.into_iter().filter_map(|pid| cpu_ms(pid).ok().map(|ms| (pid, ms))).collect())
    }

    /// CPU used since `before` by the processes in this snapshot; one that was not in `before`
    /// (started in between) counts from zero. One that ended in between is not counted.
    pub fn since(&self, before: &CpuSnap) -> f64 {
        self.0.iter().map(|(pid, ms)| (ms - before.0.get(pid).copied().unwrap_or(0.0)).max(0.0)).sum()
    }
}

/// PID of the process listening on TCP `ip:port` (or on 0.0.0.0:port), from /proc/net/tcp and
/// the processes' descriptors. None if there is none or it cannot be seen.
pub fn listener_pid(ip: Ipv4Addr, port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (addr, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
        let (hex_ip, hex_port) = addr.split_once(':')?;
        // The address is the kernel's __be32 printed as a host-order number.
        let local = Ipv4Addr::from(u32::from_str_radix(hex_ip, 16).ok()?.to_ne_bytes());
        let lport = u16::from_str_radix(hex_port, 16).ok()?;
        let listening = *state == "0A";
        (listening && lport == port && (local == ip || local.is_unspecified())).then(|| inode.to_string())
    })?;
    let target = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// Busy time of all CPUs since boot (the `cpu` line of /proc/stat without idle and iowait), ms.
pub fn machine_busy_ms() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")).ok_or_else(|| anyhow!("odd /proc/stat"))?;
    let ticks: Vec<u64> = line.split_whitespace().take(8).filter_map(|f| f.parse().ok()).collect();
    if ticks.len() < 8 {
        return Err(anyhow!("odd /proc/stat cpu line: {line}"));
    }
    let busy = ticks.iter().sum::<u64>() - ticks[3] - ticks[4];
    Ok(busy as f64 * 1000.0 / clock_ticks_per_second())
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// This process's soft limit on open descriptors (children inherit it).
pub fn nofile_limit() -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur
    } else {
        1024
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Make a child get SIGKILL when this process dies, however it dies (Linux `PR_SET_PDEATHSIG`).
/// Spawn from a thread that lives as long as the process (the signal follows the spawning
/// thread): this tool spawns from the main thread of a current-thread runtime.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and only calls the async-signal-safe prctl.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.kill_on_drop(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_kb(pid).unwrap() > 0);
        assert!(open_fds(pid).unwrap() >= 3);
        assert!(cpu_ms(pid).unwrap() >= 0.0);
        let before = CpuSnap::read([pid]);
        let after = CpuSnap::read([pid, u32::MAX]);
        assert!(after.since(&before) >= 0.0);
        assert!(after.since(&CpuSnap::default()) >= after.since(&before));
        assert!(loadavg().is_some());
        assert!(machine_busy_ms().unwrap() > 0.0);
        assert!(nofile_limit() > 0);
    }

    #[test]
    fn finds_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_pid(Ipv4Addr::LOCALHOST, port), Some(std::process::id()));
        drop(l);
        assert_eq!(listener_pid(Ipv4Addr::LOCALHOST, port), None);
    }
}
