//! Run-time arithmetic every backend shares, so the interpreter, the JIT and compiled
//! executables agree to the bit.
//!
//! **Reductions** (`sum`, `norm`, `dot`, the sums inside `@`) add their terms in a fixed,
//! documented order that vector units can follow: term `i` goes into partial sum `i % 8`
//! for the first `8 ⌊n/8⌋` terms, the eight partial sums are combined pairwise,
//! `((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`, and the remaining terms are then
//! added one by one. (A plain left-to-right sum would forbid SIMD in generated code, and a
//! library's own unrolling may change between versions.)
//!
//! **Noise** (`randn()`) comes from xoshiro256++ seeded through SplitMix64, with normal
//! samples by Marsaglia's polar method (one sample per accepted pair). The generator is
//! specified here rather than taken from a library so that a seed gives the same trace in
//! every backend and in every version of dyn.

/// Number of partial sums of a reduction.
pub const LANES: usize = 8;

/// Sums `term(0) … term(n-1)` in the reduction order described above.
pub fn reduce_sum(n: usize, mut term: impl FnMut(usize) -> f64) -> f64 {
    let full = n / LANES * LANES;
    let mut s = [0.0f64; LANES];
    let mut i = 0;
    while i < full {
        for (k, acc) in s.iter_mut().enumerate() {
            *acc += term(i + k);
        }
        i += LANES;
    }
    let mut total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for j in full..n {
        total += term(j);
    }
    total
}

/// The state of `randn()`'s generator: xoshiro256++.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Noise {
    /// The four state words.
    pub s: [u64; 4],
}

impl Noise {
    /// The generator for `seed`: its state is four SplitMix64 outputs.
    pub fn new(seed: u64) -> Noise {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Noise {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A uniform sample in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (Marsaglia's polar method).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s < 1.0 && s > 0.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_order_is_the_documented_one() {
        // 19 terms: two full rounds of 8, then 3 added one by one.
        let xs: Vec<f64> = (0..19).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let mut s = [0.0; 8];
        for (i, x) in xs[..16].iter().enumerate() {
            s[i % 8] += x;
        }
        let mut want = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        for x in &xs[16..] {
            want += x;
        }
        assert_eq!(reduce_sum(19, |i| xs[i]).to_bits(), want.to_bits());
        assert_eq!(reduce_sum(0, |_| 1.0), 0.0);
        assert_eq!(reduce_sum(3, |i| i as f64), 3.0);
    }

    #[test]
    fn xoshiro_matches_the_reference_sequence() {
        // Reference: xoshiro256++ from state {1, 2, 3, 4} (Vigna's reference code).
        let mut g = Noise { s: [1, 2, 3, 4] };
        let want = [41943041u64, 58720359, 3588806011781223, 3591011842654386];
        for w in want {
            assert_eq!(g.next_u64(), w);
        }
    }

    #[test]
    fn normal_samples_have_unit_variance() {
        let mut g = Noise::new(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| g.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        // Standard errors: 1/sqrt(n) ≈ 0.0022 for the mean, sqrt(2/n) ≈ 0.0032 for the variance.
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "variance {var}");
        assert_ne!(Noise::new(1).next_u64(), Noise::new(2).next_u64());
    }
}
