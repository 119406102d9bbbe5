//! The two summaries the benchmarks print (medians and milliseconds), and
//! the order the interleaved benchmarks run their variants in.
use std::time::Duration;

/// The median of `v` (the mean of the middle two for an even count; NaN
/// for none).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The order in which an interleaved benchmark runs its `k` variants in
/// round `round`: a permutation of `0..k`, shuffled (Fisher-Yates driven by
/// splitmix64 of the round number, so a rerun repeats it). A start pays part
/// of the teardown of the container before it, and how much depends on
/// that container (driver mounts, a new linker-cache inode), so no variant
/// may always follow the same one: turning a fixed order by one each round
/// keeps every variant behind the same predecessor.
pub fn round_order(k: usize, round: usize) -> Vec<usize> {
    let mut state = round as u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..k).collect();
    for i in (1..k).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_orders_are_permutations_with_every_predecessor() {
        let k = 5;
        let mut follows = vec![vec![0usize; k]; k];
        let mut previous = None;
        for round in 0..200 {
            let order = round_order(k, round);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..k).collect::<Vec<_>>(), "round {round}");
            for i in order {
                if let Some(p) = previous {
                    follows[i][p] += 1;
                }
                previous = Some(i);
            }
        }
        for (i, row) in follows.iter().enumerate() {
            for (p, n) in row.iter().enumerate() {
                if i != p {
                    assert!(*n >= 20, "{i} followed {p} only {n} times in 200 rounds");
                }
            }
        }
        assert_eq!(round_order(k, 7), round_order(k, 7));
        assert_eq!(round_order(1, 3), vec![0]);
        assert!(round_order(0, 3).is_empty());
    }

    #[test]
    fn medians() {
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }
}
