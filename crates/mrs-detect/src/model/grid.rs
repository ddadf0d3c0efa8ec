//! Regular time grids: bucket step inference and the seasonal plan.
//!
//! * The step is the most common positive difference between consecutive distinct timestamps
//!   (ties go to the smallest difference), or given by the caller.
//! * A bucket index is `floor((ts - origin) / step)`; a bucket without rows is *missing*
//!   (`NaN`), never a zero.
//! * The seasonal plan lists the season lengths (in buckets) to try, longest first: weekly
//!   when the step divides a week, then daily when it divides a day (used until two weeks of
//!   history exist); a step dividing neither (weekly data, odd steps) gets a season of one
//!   bucket, i.e. a trailing robust level. A season is used at bucket
//!   `t` only once the series has two full seasons of history before `t`, so the choice is
//!   causal (appending data never changes it).

/// Microseconds per day.
pub const DAY_US: i64 = 86_400_000_000;
/// Microseconds per week.
pub const WEEK_US: i64 = 7 * DAY_US;
/// Largest grid a single series may span (about 19 years of 5-minute buckets).
pub const MAX_BUCKETS: i64 = 2_000_000;

/// Most common positive difference between consecutive values of the sorted, de-duplicated
/// `sorted_unique_ts`; `None` with fewer than two distinct timestamps.
pub fn infer_step(sorted_unique_ts: &[i64]) -> Option<i64> {
    if sorted_unique_ts.len() < 2 {
        return None;
    }
    let mut diffs: Vec<i64> = sorted_unique_ts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .filter(|d| *d > 0)
        .collect();
    diffs.sort_unstable();
    let mut best = (0usize, None);
    let mut i = 0;
    while i < diffs.len() {
        let mut j = i;
        while j < diffs.len() && diffs[j] == diffs[i] {
            j += 1;
        }
        if j - i > best.0 {
            best = (j - i, Some(diffs[i]));
        }
        i = j;
    }
    best.1
}

/// How a season length is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeasonSpec {
    /// Weekly, then daily, then a trailing level, from the step (microseconds).
    Auto { step_us: i64 },
    /// A fixed season of this many buckets (`1` = no seasonality, trailing level).
    Fixed(usize),
}

/// Season lengths to try (longest first) and the windows derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeasonPlan {
    /// Candidate season lengths in buckets, longest first; always ends with the shortest usable.
    pub seasons: Vec<usize>,
    /// Buckets per day when the step divides a day (cadence of the scale recomputation), else 1.
    pub per_day: usize,
    /// Trailing window of the robust scale, in buckets (a week when it can be expressed).
    pub scale_window: usize,
}

impl SeasonPlan {
    /// Builds the plan for a specification.
    pub fn new(spec: SeasonSpec) -> Self {
        match spec {
            SeasonSpec::Auto { step_us } => {
                let step = step_us.max(1);
                let per = |period: i64| {
                    if step < period && period % step == 0 {
                        usize::try_from(period / step).ok()
                    } else {
                        None
                    }
                };
                let week = per(WEEK_US);
                let day = per(DAY_US);
                let mut seasons = Vec::with_capacity(3);
                seasons.extend(week);
                seasons.extend(day);
                if seasons.is_empty() {
                    seasons.push(1);
                }
                let per_day = day.unwrap_or(1);
                let scale_window = week.unwrap_or(28).max(28);
                Self {
                    seasons,
                    per_day,
                    scale_window,
                }
            }
            SeasonSpec::Fixed(s) => {
                let s = s.max(1);
                Self {
                    seasons: vec![s],
                    per_day: (s / 7).max(1),
                    scale_window: s.max(28),
                }
            }
        }
    }
}

/// Bucket index of `ts` on a grid starting at `origin` with `step` (both microseconds),
/// saturated to the i64 range: a span wider than i64 with a tiny step must read as too many
/// buckets, not wrap to a negative index (found by fuzzing).
#[inline]
pub fn bucket_of(ts: i64, origin: i64, step: i64) -> i64 {
    let b = (i128::from(ts) - i128::from(origin)).div_euclid(i128::from(step));
    b.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn bucket_indices_saturate_instead_of_wrapping() {
        // Regression (fuzz target `robust`): a span wider than i64 at a 1 us step wrapped.
        let ts = [
            -4_774_451_407_313_060_561,
            -45_035_995_573_155_717,
            -1,
            0,
            5_582_775_517_704_618_239,
        ];
        let step = infer_step(&ts).expect("a step");
        assert_eq!(step, 1);
        assert_eq!(bucket_of(ts[4], ts[0], step), i64::MAX);
        let rows: Vec<Option<i64>> = ts.iter().copied().map(Some).collect();
        let values = vec![Some(1.0); ts.len()];
        assert!(matches!(
            super::super::score_rows(&rows, &values, None, 3.5),
            Err(super::super::GridError::TooManyBuckets(_))
        ));
    }

    #[test]
    fn step_is_the_mode() {
        assert_eq!(infer_step(&[]), None);
        assert_eq!(infer_step(&[5]), None);
        assert_eq!(
            infer_step(&[0, HOUR, 2 * HOUR, 5 * HOUR, 6 * HOUR]),
            Some(HOUR)
        );
        // a tie goes to the smaller difference
        assert_eq!(infer_step(&[0, 2, 5]), Some(2));
    }

    #[test]
    fn plans() {
        let hourly = SeasonPlan::new(SeasonSpec::Auto { step_us: HOUR });
        assert_eq!(hourly.seasons, vec![168, 24]);
        assert_eq!(hourly.per_day, 24);
        assert_eq!(hourly.scale_window, 168);
        let five = SeasonPlan::new(SeasonSpec::Auto {
            step_us: 5 * 60_000_000,
        });
        assert_eq!(five.seasons, vec![2016, 288]);
        let daily = SeasonPlan::new(SeasonSpec::Auto { step_us: DAY_US });
        assert_eq!(daily.seasons, vec![7]);
        let weekly = SeasonPlan::new(SeasonSpec::Auto { step_us: WEEK_US });
        assert_eq!(weekly.seasons, vec![1]);
        // 5 hours divides neither a day nor a week
        let odd = SeasonPlan::new(SeasonSpec::Auto { step_us: 5 * HOUR });
        assert_eq!(odd.seasons, vec![1]);
        assert_eq!(SeasonPlan::new(SeasonSpec::Fixed(0)).seasons, vec![1]);
    }

    #[test]
    fn buckets_floor() {
        assert_eq!(bucket_of(HOUR + 5, 0, HOUR), 1);
        assert_eq!(bucket_of(-1, 0, HOUR), -1);
    }
}
