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
//! O(points), one pass.

/// The decision for one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    /// Not scored: neither normal nor anomalous.
    Unscored,
    /// Scored and normal.
    Normal,
    /// Anomalous with a direction (`1` spike, `-1` drop) and a score.
    Anomalous { direction: i8, score: f64 },
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
    /// Anomalous points in the window.
    pub anomalous: usize,
}

/// Builds windows; `end_after` below 1 is read as 1.
pub fn build_windows(points: impl IntoIterator<Item = Point>, end_after: usize) -> Vec<Window> {
    let end_after = end_after.max(1);
    let mut out = Vec::new();
    let mut open: Option<Window> = None;
    let mut normals = 0usize;
    let mut first_after: Option<usize> = None;
    for (i, p) in points.into_iter().enumerate() {
        match p {
            Point::Unscored => {}
            Point::Normal => {
                if let Some(w) = open.as_mut() {
                    normals += 1;
                    if first_after.is_none() {
                        first_after = Some(i);
                    }
                    if normals >= end_after {
                        w.end = first_after;
                        out.extend(open.take());
                    }
                }
            }
            Point::Anomalous { direction, score } => {
                if let Some(w) = open.as_mut() {
                    if w.direction == direction {
                        w.last = i;
                        w.anomalous += 1;
                        if score > w.peak_score {
                            w.peak_score = score;
                            w.peak = i;
                        }
                        normals = 0;
                        first_after = None;
                        continue;
                    }
                    w.end = Some(first_after.unwrap_or(i));
                    out.extend(open.take());
                }
                open = Some(Window {
                    start: i,
                    last: i,
                    end: None,
                    direction,
                    peak_score: score,
                    peak: i,
                    anomalous: 1,
                });
                normals = 0;
                first_after = None;
            }
        }
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
    fn start_is_causal() {
        let pts = [N, up(0.6), N, up(0.7), N, N, N, up(0.8)];
        let all = build_windows(pts, 3);
        for cut in 2..pts.len() {
            let part = build_windows(pts[..cut].iter().copied(), 3);
            assert_eq!(part[0].start, all[0].start);
        }
    }
}
