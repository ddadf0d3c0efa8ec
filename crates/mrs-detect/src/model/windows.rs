//! Turning per-bucket decisions into anomaly windows.
//!
//! Rule (shared by `mrs_detect` and `anomaly_windows`): points are visited in time order;
//! unscored points (missing buckets, warm-up, NULL scores) are skipped and count neither way.
//! A window opens at the first anomalous point (`start`, reproducible and causal), grows with
//! anomalous points of the same direction, and bridges runs of fewer than `end_after` normal
//! points. It closes when `end_after` normal points have followed its last anomalous point
//! (`end` = the first point after that last anomalous one, exclusive), or at once when an
//! anomalous point of the other direction arrives (`end` = that point, which opens the next
//! window). A window still waiting at the end of the data is open (`end = None`).
//!
//! A *run* point (sustained evidence found at point `i` over the points `start..=i`) is
//! anomalous at `i` and, when it opens a window, opens it at its `start`, but never before
//! the end of the previous window nor before the last anomalous point of a window it closes:
//! a decision already taken (a closed window, an opposite run) is never rewritten, so the
//! start stays causal and reproducible. O(points), one pass.

/// The decision for one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    /// Not scored: neither normal nor anomalous.
    Unscored,
    /// Scored and normal.
    Normal,
    /// Anomalous with a direction (`1` spike, `-1` drop) and a score.
    Anomalous { direction: i8, score: f64 },
    /// Anomalous, with the evidence accumulated since point `start` (`<=` this point's index).
    Run {
        direction: i8,
        score: f64,
        start: usize,
    },
}

/// A window over point indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Index of the first anomalous point.
    pub start: usize,
    /// Index of the last anomalous point.
    pub last: usize,
    /// Index of the first point after `last` once closed; `None` while open.
    pub end: Option<usize>,
    /// `1` spike, `-1` drop.
    pub direction: i8,
    /// Largest score in the window.
    pub peak_score: f64,
    /// Index of the first point reaching `peak_score`.
    pub peak: usize,
    /// Anomalous points in the window (a run counts every point it spans).
    pub anomalous: usize,
    /// Score of the first point.
    pub start_score: f64,
    /// Index of the point at which the window held two anomalous points and its peak score
    /// had reached the confirmation score (when it did).
    pub confirmed: Option<usize>,
    /// Index of the point whose arrival closed the window (`None` while open).
    pub closed_at: Option<usize>,
}

/// Builds windows; `end_after` below 1 is read as 1.
pub fn build_windows(points: impl IntoIterator<Item = Point>, end_after: usize) -> Vec<Window> {
    build_windows_from(points, end_after, 0, 0.0)
}

/// [`build_windows`] for a resumed detection: no window is open before `barrier` and no run
/// reaches back past it (the points before it were decided by an earlier run). A window is
/// `confirmed` once it holds two anomalous points and its peak score reaches `confirm_score`.
pub fn build_windows_from(
    points: impl IntoIterator<Item = Point>,
    end_after: usize,
    barrier: usize,
    confirm_score: f64,
) -> Vec<Window> {
    let end_after = end_after.max(1);
    let mut out = Vec::new();
    let mut open: Option<Window> = None;
    let mut normals = 0usize;
    let mut first_after: Option<usize> = None;
    // Points before this index belong to decided windows: a run may not reach back past it.
    let mut barrier = barrier;
    for (i, p) in points.into_iter().enumerate() {
        let (direction, score, run_start) = match p {
            Point::Unscored => continue,
            Point::Normal => {
                if let Some(w) = open.as_mut() {
                    normals += 1;
                    if first_after.is_none() {
                        first_after = Some(i);
                    }
                    if normals >= end_after {
                        w.end = first_after;
                        w.closed_at = Some(i);
                        barrier = first_after.unwrap_or(i);
                        out.extend(open.take());
                    }
                }
                continue;
            }
            Point::Anomalous { direction, score } => (direction, score, i),
            Point::Run {
                direction,
                score,
                start,
            } => (direction, score, start.min(i)),
        };
        if let Some(w) = open.as_mut() {
            if w.direction == direction {
                w.last = i;
                w.anomalous += 1;
                if score > w.peak_score {
                    w.peak_score = score;
                    w.peak = i;
                }
                if w.confirmed.is_none() && w.peak_score >= confirm_score {
                    w.confirmed = Some(i);
                }
                normals = 0;
                first_after = None;
                continue;
            }
            let end = first_after.unwrap_or(i);
            w.end = Some(end);
            w.closed_at = Some(i);
            barrier = end.max(w.last + 1);
            out.extend(open.take());
        }
        let start = run_start.max(barrier).min(i);
        let anomalous = i - start + 1;
        open = Some(Window {
            start,
            last: i,
            end: None,
            direction,
            peak_score: score,
            peak: i,
            anomalous,
            start_score: score,
            confirmed: (anomalous >= 2 && score >= confirm_score).then_some(i),
            closed_at: None,
        });
        normals = 0;
        first_after = None;
    }
    out.extend(open);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: Point = Point::Normal;
    const U: Point = Point::Unscored;
    fn up(score: f64) -> Point {
        Point::Anomalous {
            direction: 1,
            score,
        }
    }
    fn down(score: f64) -> Point {
        Point::Anomalous {
            direction: -1,
            score,
        }
    }

    #[test]
    fn empty_and_normal() {
        assert!(build_windows([], 3).is_empty());
        assert!(build_windows([N, U, N], 3).is_empty());
    }

    #[test]
    fn bridges_short_gaps_and_closes_after_end_after() {
        let w = build_windows([N, up(0.6), N, N, up(0.9), N, U, N, N, N], 3);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].start, 1);
        assert_eq!(w[0].last, 4);
        assert_eq!(w[0].end, Some(5));
        assert_eq!(w[0].peak, 4);
        assert_eq!(w[0].anomalous, 2);
    }

    #[test]
    fn open_window_has_no_end_and_direction_change_splits() {
        let w = build_windows([up(0.6), N, down(0.7), N, N], 3);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].end, Some(1));
        assert_eq!(w[1].start, 2);
        assert_eq!(w[1].direction, -1);
        assert_eq!(w[1].end, None);
        let w = build_windows([up(0.6), down(0.7)], 0);
        assert_eq!(w[0].end, Some(1));
    }

    #[test]
    fn a_run_opens_at_its_start_but_never_rewrites_a_decided_window() {
        let run = |start| Point::Run {
            direction: 1,
            score: 0.6,
            start,
        };
        let w = build_windows([N, N, N, N, run(1), N, N, N], 3);
        assert_eq!((w[0].start, w[0].last, w[0].anomalous), (1, 4, 4));
        assert_eq!((w[0].confirmed, w[0].end), (Some(4), Some(5)));
        // closed window [1, 2) ends at 2: a later run starting at 0 starts at 2
        let w = build_windows([N, up(0.9), N, N, N, run(0), N], 3);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].end, Some(2));
        assert_eq!(w[0].confirmed, None);
        assert_eq!(w[1].start, 2);
        // an opposite run closes the open window and starts after its last anomalous point
        let w = build_windows([down(0.7), N, run(0), N], 3);
        assert_eq!(w[0].end, Some(1));
        assert_eq!(w[1].start, 1);
        // a run in the open window's direction extends it
        let w = build_windows([up(0.7), N, run(0)], 3);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].start, w[0].last, w[0].anomalous), (0, 2, 2));
    }

    #[test]
    fn confirmation_waits_for_the_peak_score() {
        let pts = [
            up(0.51),
            up(0.52),
            up(0.56),
            N,
            N,
            N,
            up(0.51),
            up(0.52),
            N,
            N,
            N,
        ];
        let w = build_windows_from(pts, 3, 0, 0.55);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].anomalous, w[0].confirmed), (3, Some(2)));
        assert_eq!((w[1].anomalous, w[1].confirmed), (2, None));
        // without a confirmation score, the second anomalous point confirms
        assert_eq!(build_windows(pts, 3)[1].confirmed, Some(7));
    }

    #[test]
    fn start_is_causal() {
        let pts = [N, up(0.6), N, up(0.7), N, N, N, up(0.8)];
        let all = build_windows(pts, 3);
        for cut in 2..pts.len() {
            let part = build_windows(pts[..cut].iter().copied(), 3);
            assert_eq!(part[0].start, all[0].start);
        }
    }
}
