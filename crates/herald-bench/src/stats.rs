//! Delay statistics over all receipts.

use crate::collect::{WorkerResult, NO_STAMP};

/// Delays in ms. `u*` by the tool's clock when it parsed the frame, `k*` by the kernel's receive
/// timestamp; `last` is per broadcast the delay of the last client to get it, `lag` is the
/// tool's own delay (tool time − kernel time) per receipt.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Delays {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub kp50: Option<f64>,
    pub kp99: Option<f64>,
    pub kmax: Option<f64>,
    pub last_median: Option<f64>,
    pub last_max: Option<f64>,
    pub klast_median: Option<f64>,
    pub klast_max: Option<f64>,
    pub lag_p50: Option<f64>,
    pub lag_p99: Option<f64>,
    /// Per broadcast with receipts: the last client's delay by kernel timestamp.
    pub klast_each: Vec<f64>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Median (lower middle for an even count) of unsorted values.
fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    percentile(&values, 0.5)
}

fn ms(us: Option<i64>) -> Option<f64> {
    us.map(|v| v as f64 / 1000.0)
}

/// `corrections_us[b]`: how long after the time embedded in broadcast b's payload the request
/// actually went out; subtracted so every delay runs from the send. With `node`, only the
/// receipts of clients connected to that server (node) index count.
pub fn delays(results: &[WorkerResult], corrections_us: &[i64], node: Option<u16>) -> Delays {
    let broadcasts = results.iter().map(|r| r.u.len()).max().unwrap_or(0);
    let (mut all_u, mut all_k, mut lag) = (Vec::new(), Vec::new(), Vec::new());
    let (mut last_u, mut last_k) = (Vec::new(), Vec::new());
    for b in 0..broadcasts {
        let c = corrections_us.get(b).copied().unwrap_or(0);
        let (mut bu, mut bk) = (None::<i64>, None::<i64>);
        for r in results {
            let (Some(us), Some(ks)) = (r.u.get(b), r.k.get(b)) else {
                continue;
            };
            let nodes = r.n.get(b);
            for (i, (&u, &k)) in us.iter().zip(ks).enumerate() {
                if let Some(want) = node {
                    if nodes.and_then(|n| n.get(i)).copied().unwrap_or(0) != want {
                        continue;
                    }
                }
                let u = (i64::from(u) - c).max(0);
                all_u.push(u);
                bu = Some(bu.map_or(u, |m| m.max(u)));
                if k != NO_STAMP {
                    let k = (i64::from(k) - c).max(0);
                    all_k.push(k);
                    lag.push(u - k);
                    bk = Some(bk.map_or(k, |m| m.max(k)));
                }
            }
        }
        last_u.extend(bu);
        last_k.extend(bk);
    }
    all_u.sort_unstable();
    all_k.sort_unstable();
    lag.sort_unstable();
    Delays {
        p50: ms(percentile(&all_u, 0.5)),
        p99: ms(percentile(&all_u, 0.99)),
        max: ms(all_u.last().copied()),
        kp50: ms(percentile(&all_k, 0.5)),
        kp99: ms(percentile(&all_k, 0.99)),
        kmax: ms(all_k.last().copied()),
        last_median: ms(median(last_u.clone())),
        last_max: ms(last_u.iter().max().copied()),
        klast_median: ms(median(last_k.clone())),
        klast_max: ms(last_k.iter().max().copied()),
        lag_p50: ms(percentile(&lag, 0.5)),
        lag_p99: ms(percentile(&lag, 0.99)),
        klast_each: last_k.iter().map(|&v| v as f64 / 1000.0).collect(),
    }
}

/// Receipts per server (node) index, for `nodes` nodes.
pub fn received_by_node(results: &[WorkerResult], nodes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; nodes.max(1)];
    for r in results {
        for (b, us) in r.u.iter().enumerate() {
            let ns = r.n.get(b);
            for i in 0..us.len() {
                let node = ns.and_then(|n| n.get(i)).copied().unwrap_or(0) as usize;
                if let Some(c) = counts.get_mut(node) {
                    *c += 1;
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.5), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn last_is_per_broadcast_max() {
        let w1 = WorkerResult {
            u: vec![vec![1000, 3000], vec![2000]],
            k: vec![vec![500, 2500], vec![NO_STAMP]],
            ..Default::default()
        };
        let w2 =
            WorkerResult { u: vec![vec![2000], vec![9000]], k: vec![vec![1500], vec![8000]], ..Default::default() };
        let d = delays(&[w1, w2], &[0, 1000], None);
        // broadcast 0: last 3 ms (kernel 2.5); broadcast 1: last 8 ms after the 1 ms correction.
        assert_eq!(d.last_max, Some(8.0));
        assert_eq!(d.last_median, Some(3.0));
        assert_eq!(d.klast_median, Some(2.5));
        assert_eq!(d.klast_max, Some(7.0));
        assert_eq!(d.max, Some(8.0));
        assert_eq!(d.lag_p50, Some(0.5));
    }

    #[test]
    fn per_node_filter() {
        let w = WorkerResult {
            u: vec![vec![1000, 5000, 2000]],
            k: vec![vec![900, 4900, 1900]],
            n: vec![vec![0, 1, 0]],
            ..Default::default()
        };
        let both = delays(std::slice::from_ref(&w), &[0], None);
        assert_eq!(both.klast_median, Some(4.9));
        assert_eq!(delays(std::slice::from_ref(&w), &[0], Some(0)).klast_median, Some(1.9));
        assert_eq!(delays(std::slice::from_ref(&w), &[0], Some(1)).klast_median, Some(4.9));
        assert_eq!(delays(std::slice::from_ref(&w), &[0], Some(2)).klast_median, None);
        assert_eq!(received_by_node(std::slice::from_ref(&w), 3), vec![2, 1, 0]);
    }
}
