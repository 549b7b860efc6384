//! Assigning rows (tracks) to columns (detections) by cost.
//!
//! Both functions take a row-major `rows x cols` cost matrix and a `limit`: a pair whose cost
//! is `limit` or more is never matched, and matching a pair only pays when its cost is below
//! `limit` (the same objective as `lap.lapjv(..., extend_cost=True, cost_limit=limit)` that
//! ByteTrack uses). They return the column of each row, `None` for an unmatched row.

/// Reusable buffers, so that a tracker does not allocate per frame.
#[derive(Default)]
pub struct Assignment {
    u: Vec<f64>,
    v: Vec<f64>,
    p: Vec<usize>,
    way: Vec<usize>,
    minv: Vec<f64>,
    used: Vec<bool>,
    pairs: Vec<(f32, usize, usize)>,
    result: Vec<Option<usize>>,
}

impl Assignment {
    /// Minimum-cost matching: the Hungarian method with potentials (shortest augmenting
    /// paths), O(n² m) for n = min(rows, cols).
    pub fn hungarian(
        &mut self,
        cost: &[f32],
        rows: usize,
        cols: usize,
        limit: f32,
    ) -> &[Option<usize>] {
        assert_eq!(cost.len(), rows * cols, "cost matrix size");
        self.result.clear();
        self.result.resize(rows, None);
        if rows == 0 || cols == 0 {
            return &self.result;
        }
        // The method wants n <= m; solve the transpose otherwise. Costs at or above the limit
        // are capped there: a capped pair costs what leaving both unmatched costs.
        let transposed = rows > cols;
        let (n, m) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let at = |i: usize, j: usize| -> f64 {
            let c = if transposed {
                cost[j * cols + i]
            } else {
                cost[i * cols + j]
            };
            c.min(limit) as f64
        };
        self.u.clear();
        self.u.resize(n + 1, 0.0);
        self.v.clear();
        self.v.resize(m + 1, 0.0);
        self.p.clear();
        self.p.resize(m + 1, 0);
        self.way.clear();
        self.way.resize(m + 1, 0);
        for i in 1..=n {
            self.p[0] = i;
            let mut j0 = 0;
            self.minv.clear();
            self.minv.resize(m + 1, f64::INFINITY);
            self.used.clear();
            self.used.resize(m + 1, false);
            loop {
                self.used[j0] = true;
                let i0 = self.p[j0];
                let mut delta = f64::INFINITY;
                let mut j1 = 0;
                for j in 1..=m {
                    if self.used[j] {
                        continue;
                    }
                    let cur = at(i0 - 1, j - 1) - self.u[i0] - self.v[j];
                    if cur < self.minv[j] {
                        self.minv[j] = cur;
                        self.way[j] = j0;
                    }
                    if self.minv[j] < delta {
                        delta = self.minv[j];
                        j1 = j;
                    }
                }
                for j in 0..=m {
                    if self.used[j] {
                        self.u[self.p[j]] += delta;
                        self.v[j] -= delta;
                    } else {
                        self.minv[j] -= delta;
                    }
                }
                j0 = j1;
                if self.p[j0] == 0 {
                    break;
                }
            }
            loop {
                let j1 = self.way[j0];
                self.p[j0] = self.p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
        for j in 1..=m {
            let i = self.p[j];
            if i == 0 {
                continue;
            }
            let (row, col) = if transposed {
                (j - 1, i - 1)
            } else {
                (i - 1, j - 1)
            };
            if cost[row * cols + col] < limit {
                self.result[row] = Some(col);
            }
        }
        &self.result
    }

    /// Greedy matching: the cheapest remaining pair first. Cheaper than
    /// [`hungarian`](Self::hungarian), and the same whenever a box overlaps only one
    /// candidate, which is the common case.
    pub fn greedy(
        &mut self,
        cost: &[f32],
        rows: usize,
        cols: usize,
        limit: f32,
    ) -> &[Option<usize>] {
        assert_eq!(cost.len(), rows * cols, "cost matrix size");
        self.pairs.clear();
        for i in 0..rows {
            for j in 0..cols {
                let c = cost[i * cols + j];
                if c < limit {
                    self.pairs.push((c, i, j));
                }
            }
        }
        self.pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.result.clear();
        self.result.resize(rows, None);
        self.used.clear();
        self.used.resize(cols, false);
        for &(_, i, j) in &self.pairs {
            if self.result[i].is_none() && !self.used[j] {
                self.result[i] = Some(j);
                self.used[j] = true;
            }
        }
        &self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every matching by brute force: the least total cost, unmatched rows costing `limit`.
    fn brute_force(cost: &[f32], rows: usize, cols: usize, limit: f32) -> f32 {
        fn go(
            row: usize,
            used: &mut Vec<bool>,
            c: &[f32],
            rows: usize,
            cols: usize,
            l: f32,
        ) -> f32 {
            if row == rows {
                return 0.0;
            }
            let mut best = l + go(row + 1, used, c, rows, cols, l);
            for j in 0..cols {
                if !used[j] && c[row * cols + j] < l {
                    used[j] = true;
                    best = best.min(c[row * cols + j] + go(row + 1, used, c, rows, cols, l));
                    used[j] = false;
                }
            }
            best
        }
        go(0, &mut vec![false; cols], cost, rows, cols, limit)
    }

    fn total(result: &[Option<usize>], cost: &[f32], cols: usize, limit: f32) -> f32 {
        result
            .iter()
            .enumerate()
            .map(|(i, j)| j.map_or(limit, |j| cost[i * cols + j]))
            .sum()
    }

    #[test]
    fn hungarian_beats_greedy_where_greedy_is_wrong() {
        // Greedy takes (0,0) at 0.1 and must then pay 0.9 for (1,1); the optimum is 0.4.
        let cost = [0.1, 0.2, 0.2, 0.9];
        let mut a = Assignment::default();
        assert_eq!(a.hungarian(&cost, 2, 2, 1.0), &[Some(1), Some(0)]);
        assert_eq!(a.greedy(&cost, 2, 2, 1.0), &[Some(0), Some(1)]);
    }

    #[test]
    fn pairs_at_the_limit_stay_unmatched() {
        let cost = [0.9, 0.3, 0.95, 0.99];
        let mut a = Assignment::default();
        assert_eq!(a.hungarian(&cost, 2, 2, 0.8), &[Some(1), None]);
        assert_eq!(a.greedy(&cost, 2, 2, 0.8), &[Some(1), None]);
        assert_eq!(a.hungarian(&[], 0, 3, 0.8), &[] as &[Option<usize>]);
        assert_eq!(a.hungarian(&[], 3, 0, 0.8), &[None, None, None]);
    }

    #[test]
    fn hungarian_is_optimal_on_random_rectangular_matrices() {
        // A fixed linear congruential generator: the same matrices every run.
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut a = Assignment::default();
        for round in 0..300 {
            let rows = 1 + round % 6;
            let cols = 1 + (round / 6) % 6;
            let cost: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
            let limit = 0.3 + next() * 0.7;
            let result = a.hungarian(&cost, rows, cols, limit).to_vec();
            let mut cols_taken: Vec<usize> = result.iter().flatten().copied().collect();
            cols_taken.sort();
            cols_taken.dedup();
            assert_eq!(
                cols_taken.len(),
                result.iter().flatten().count(),
                "a column twice"
            );
            let best = brute_force(&cost, rows, cols, limit);
            let got = total(&result, &cost, cols, limit);
            assert!(
                (got - best).abs() < 1e-4,
                "{rows}x{cols}: {got} vs optimum {best}"
            );
        }
    }
}
