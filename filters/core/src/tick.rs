//! One proxy tick for several periodic wants: in a single-filter module the filter's own period
//! and the metrics flush (the adapter), in the one module every stage's period (the chain).
//!
//! The proxy gives a root context one timer. Each want is a period in ms (0: none). The timer
//! runs at the shortest of them, the base, and a longer want is served on every
//! ⌊period / base⌋-th tick: never later than it asked, and earlier by less than one base period
//! where the base does not divide it. Every want in shieldwall is a poll (a filter's tick looks at
//! the clock or at shared data and acts on what is due; the flush hands over what was counted),
//! so a tick that comes early costs one call and changes nothing else. A common divisor of the
//! periods would keep each one exact, but two periods with no common factor (a stage polling
//! every 200 ms and an audit sink every 137 ms) would make the proxy tick every millisecond.

/// `(base, every)`: a tick every `base` ms (0: no tick) and, for each of `periods` in order,
/// every how many ticks it is served (0: never, for a period of 0).
pub fn plan(periods: &[u64]) -> (u64, Vec<u64>) {
    let base = periods
        .iter()
        .copied()
        .filter(|p| *p > 0)
        .min()
        .unwrap_or(0);
    let every = periods
        .iter()
        .map(|&p| if p == 0 { 0 } else { p / base.max(1) })
        .collect();
    (base, every)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tick_serves_a_filter_and_the_flush() {
        // (the filter's period, the flush period), as the adapter asks.
        // Nothing to flush and no filter tick: no tick at all.
        assert_eq!(plan(&[0, 0]), (0, vec![0, 0]));
        // Only the flush.
        assert_eq!(plan(&[0, 1000]), (1000, vec![0, 1]));
        // Counting off: the filter's own period, every tick the filter's.
        assert_eq!(plan(&[200, 0]), (200, vec![1, 0]));
        // A filter ticking at least as often as the flush: its ticks flush too.
        assert_eq!(plan(&[200, 1000]), (200, vec![1, 5]));
        assert_eq!(plan(&[1000, 1000]), (1000, vec![1, 1]));
        // A slower filter: the flush period, and the filter every n-th tick.
        assert_eq!(plan(&[30_000, 1000]), (1000, vec![30, 1]));
        // Not divisible: the filter a little early, never late.
        assert_eq!(plan(&[1500, 1000]), (1000, vec![1, 1]));
        assert_eq!(plan(&[30_007, 1000]), (1000, vec![30, 1]));
    }

    #[test]
    fn periods_without_a_common_factor_do_not_make_a_fast_tick() {
        // jwt-auth's 200 ms, token-introspection's 100 ms, an audit sink's 137 ms: a common
        // divisor would be 1 ms.
        assert_eq!(plan(&[200, 100, 137, 0]), (100, vec![2, 1, 1, 0]));
    }

    #[test]
    fn every_want_is_served_no_later_than_it_asked_and_less_than_a_base_early() {
        let sets: [&[u64]; 5] = [
            &[1, 7, 100],
            &[999, 1001, 4999],
            &[60_000, 50],
            &[86_400_000, 1000, 0],
            &[137, 200, 10, 5000],
        ];
        for periods in sets {
            let (base, every) = plan(periods);
            assert_eq!(every.len(), periods.len());
            assert!(base >= 1, "{periods:?}");
            for (&p, &n) in periods.iter().zip(&every) {
                if p == 0 {
                    assert_eq!(n, 0);
                    continue;
                }
                assert!(n >= 1, "{periods:?}");
                assert!(base * n <= p, "{periods:?}: {p} served late");
                assert!(
                    base * n > p - base,
                    "{periods:?}: {p} served a base early or more"
                );
            }
        }
    }
}
