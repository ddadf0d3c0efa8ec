//! Self-contained, version-stable random numbers.
//!
//! Every value of the synthetic lake comes from these generators, written here rather than taken
//! from a crate so that a dependency upgrade can never change a generated lake. Streams are
//! addressed by hashing (seed, names, position), so generation order and threading never change
//! a value.

/// SplitMix64 step: the standard seeding/mixing function (Steele, Lea, Flood 2014).
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes one 64-bit value into a well-distributed 64-bit value.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut s = x;
    splitmix64(&mut s)
}

/// FNV-1a hash of bytes, used to turn names into stream keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Key of a stream derived from a seed and a list of names (order matters).
pub fn stream_key(seed: u64, parts: &[&str]) -> u64 {
    let mut k = mix64(seed ^ 0x005E_ED0F_4D52_5300);
    for p in parts {
        k = mix64(k ^ fnv1a(p.as_bytes()));
        // Separator so that ["ab","c"] and ["a","bc"] differ.
        k = mix64(k.wrapping_add(p.len() as u64));
    }
    k
}

/// Key of the stream at an integer position (for example a bucket index) within a keyed stream.
#[inline]
pub fn position_key(key: u64, pos: u64) -> u64 {
    mix64(key ^ pos.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// xoshiro256** 1.0 (Blackman and Vigna), seeded through SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s }
    }

    /// A generator for a named stream of a seed.
    pub fn keyed(seed: u64, parts: &[&str]) -> Self {
        Self::new(stream_key(seed, parts))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1].
    #[inline]
    pub fn uniform_pos(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [lo, hi] (inclusive); returns `lo` when the range is empty.
    pub fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo + 1) as u64;
        // Lemire's multiply-shift; the tiny bias is irrelevant here and keeps one draw per call.
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box–Muller, one value per pair of uniforms).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform_pos();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, scale) by Marsaglia–Tsang (2000); shape < 1 through the boost
    /// Gamma(a) = Gamma(a + 1) · U^(1/a).
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape.is_nan() || scale.is_nan() || shape <= 0.0 || scale <= 0.0 {
            return 0.0;
        }
        if shape < 1.0 {
            let g = self.gamma(shape + 1.0, scale);
            return g * self.uniform_pos().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.uniform_pos();
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
                return d * v * scale;
            }
        }
    }

    /// Poisson(lambda): inversion by sequential search below 30, Hörmann's PTRS above.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let u = self.uniform();
            let mut k = 0u64;
            let mut p = (-lambda).exp();
            let mut cdf = p;
            while u > cdf {
                k += 1;
                p *= lambda / k as f64;
                cdf += p;
                if p < 1e-300 && cdf < u {
                    // Numerical tail: the remaining mass is negligible.
                    break;
                }
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform_pos();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k.max(0.0) as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
                <= -lambda + k * loglam - ln_gamma(k + 1.0)
            {
                return k as u64;
            }
        }
    }

    /// Negative binomial with the given mean and dispersion `k` (variance mean + mean²/k),
    /// sampled as a gamma–Poisson mixture.
    pub fn neg_binomial(&mut self, mean: f64, k: f64) -> u64 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        let lambda = self.gamma(k, mean / k);
        self.poisson(lambda)
    }

    /// Picks an index with probability proportional to `weights`.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range_usize(0, i);
            v.swap(i, j);
        }
    }
}

/// Standard deviation of the negative binomial with this mean and dispersion.
#[inline]
pub fn nb_sd(mean: f64, k: f64) -> f64 {
    if mean > 0.0 {
        (mean + mean * mean / k).sqrt()
    } else {
        0.0
    }
}

/// ln Γ(x) for x > 0, shared with the models.
pub use mrs_core::special::ln_gamma;

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    #[test]
    fn splitmix_and_xoshiro_are_fixed() {
        // Reference values of SplitMix64 from seed 0 (published test vector).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
        // Same seed, same stream; different seed, different stream.
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(43);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(stream_key(1, &["ab", "c"]), stream_key(1, &["a", "bc"]));
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(7);
        let u: Vec<f64> = (0..200_000).map(|_| r.uniform()).collect();
        let (m, v) = moments(&u);
        assert!((m - 0.5).abs() < 0.005, "{m}");
        assert!((v - 1.0 / 12.0).abs() < 0.002, "{v}");
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        let z: Vec<f64> = (0..200_000).map(|_| r.normal()).collect();
        let (m, v) = moments(&z);
        assert!(m.abs() < 0.01, "{m}");
        assert!((v - 1.0).abs() < 0.02, "{v}");
        for _ in 0..1000 {
            let k = r.range_usize(3, 5);
            assert!((3..=5).contains(&k));
        }
    }

    #[test]
    fn gamma_moments() {
        let mut r = Rng::new(11);
        for (shape, scale) in [(0.5, 2.0), (1.0, 1.0), (3.0, 0.5), (20.0, 2.0)] {
            let g: Vec<f64> = (0..100_000).map(|_| r.gamma(shape, scale)).collect();
            let (m, v) = moments(&g);
            let em = shape * scale;
            let ev = shape * scale * scale;
            assert!(
                (m - em).abs() < 0.03 * em,
                "shape {shape}: mean {m} vs {em}"
            );
            assert!((v - ev).abs() < 0.08 * ev, "shape {shape}: var {v} vs {ev}");
            assert!(g.iter().all(|x| *x >= 0.0));
        }
    }

    #[test]
    fn poisson_and_negative_binomial_moments() {
        let mut r = Rng::new(13);
        for lambda in [0.05, 0.7, 4.0, 25.0, 31.0, 250.0] {
            let p: Vec<f64> = (0..100_000).map(|_| r.poisson(lambda) as f64).collect();
            let (m, v) = moments(&p);
            assert!(
                (m - lambda).abs() < 0.03 * lambda + 0.005,
                "λ {lambda}: mean {m}"
            );
            assert!(
                (v - lambda).abs() < 0.06 * lambda + 0.01,
                "λ {lambda}: var {v}"
            );
        }
        let (mean, k) = (3.0, 2.0);
        let x: Vec<f64> = (0..200_000)
            .map(|_| r.neg_binomial(mean, k) as f64)
            .collect();
        let (m, v) = moments(&x);
        assert!((m - mean).abs() < 0.05, "{m}");
        let ev = nb_sd(mean, k).powi(2);
        assert!((v - ev).abs() < 0.06 * ev, "{v} vs {ev}");
        assert_eq!(r.poisson(0.0), 0);
        assert_eq!(r.neg_binomial(0.0, 2.0), 0);
    }

    #[test]
    fn samplers_are_deterministic() {
        let draw = |seed| {
            let mut r = Rng::keyed(seed, &["store", "sku"]);
            (0..50)
                .map(|i| r.neg_binomial(0.1 * i as f64, 2.5))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
