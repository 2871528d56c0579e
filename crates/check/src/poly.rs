//! Exact arithmetic on finite polynomial functors `p = Σ c_e y^e` in one
//! variable with natural-number coefficients (Niu & Spivak, "Polynomial
//! Functors").
//!
//! Coefficients are `u128`, exponents are `u64`, and every operation is
//! checked: an overflow, a result with more than [`MAX_TERMS`] terms, or a
//! computation doing more than about [`MAX_WORK`] term multiplications
//! returns [`PolyTooLarge`] instead of panicking, hanging or allocating
//! unboundedly. This makes the module safe to call on untrusted input.
//!
//! Every bound is only ever reported when the *true* result (or a summand of
//! it that must be computed) exceeds it; intermediate results are never
//! larger than the final one, so no spurious error is produced except by the
//! work budget.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

/// Largest number of terms a result may have.
const MAX_TERMS: usize = 1_000_000;

/// Largest number of term-level operations (mostly term multiplications) a
/// single public operation may perform.
const MAX_WORK: u64 = 50_000_000;

/// Largest exponent span for which a dense accumulator is used (16 bytes per
/// cell, so at most 32 MiB).
const DENSE_MAX_SPAN: u64 = 1 << 21;

/// For a polynomial with at least two terms, `p^×n` has a coefficient of at
/// least `C(n, ⌊n/2⌋)` (the extreme terms alone give the binomial
/// expansion), and `C(200, 100) ≈ 9.05e58 > u128::MAX ≈ 3.4e38`.
const NON_MONOMIAL_POWER_LIMIT: u64 = 200;

/// A finite polynomial Σ c_e y^e with natural coefficients, kept in normal form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FinPoly {
    /// Exponent -> coefficient; never contains a 0 coefficient.
    terms: BTreeMap<u64, u128>,
}

/// Error: a polynomial computation overflowed `u128` coefficients or `u64`
/// exponents, or exceeded the term-count or work bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolyTooLarge;

impl fmt::Display for PolyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "polynomial too large to compute: a coefficient exceeds 2^128-1, \
             an exponent exceeds 2^64-1, the result has more than {MAX_TERMS} \
             terms, or it needs more than {MAX_WORK} term multiplications"
        )
    }
}

impl std::error::Error for PolyTooLarge {}

/// Remaining work allowance of one public operation.
struct Budget {
    left: u64,
}

impl Budget {
    fn new() -> Self {
        Budget { left: MAX_WORK }
    }

    /// Consumes `n` units of work, failing once the allowance is exhausted.
    fn charge(&mut self, n: u128) -> Result<(), PolyTooLarge> {
        match u64::try_from(n) {
            Ok(n) if n <= self.left => {
                self.left -= n;
                Ok(())
            }
            _ => {
                self.left = 0;
                Err(PolyTooLarge)
            }
        }
    }
}

/// Accumulates positive contributions `c y^e`, bounding the number of terms.
enum Acc {
    /// Cells for exponents `lo..=lo + cells.len() - 1`; `live` counts the
    /// non-zero cells.
    Dense {
        lo: u64,
        cells: Vec<u128>,
        live: usize,
    },
    Sparse(HashMap<u64, u128>),
}

impl Acc {
    /// An accumulator for exponents in `lo..=hi`; dense when the span is at
    /// most `dense_span`.
    fn new(lo: u64, hi: u64, dense_span: u64) -> Self {
        let span = hi.saturating_sub(lo);
        match usize::try_from(span) {
            Ok(span) if (span as u64) < dense_span.min(DENSE_MAX_SPAN) => Acc::Dense {
                lo,
                cells: vec![0; span + 1],
                live: 0,
            },
            _ => Acc::Sparse(HashMap::new()),
        }
    }

    /// Adds `c y^e` (with `c > 0`).
    fn add(&mut self, e: u64, c: u128) -> Result<(), PolyTooLarge> {
        debug_assert!(c > 0);
        match self {
            Acc::Dense { lo, cells, live } => {
                let cell = e
                    .checked_sub(*lo)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| cells.get_mut(i));
                debug_assert!(cell.is_some(), "exponent outside the accumulator range");
                // The caller guarantees the range; fail rather than panic.
                let Some(cell) = cell else {
                    return Err(PolyTooLarge);
                };
                if *cell == 0 {
                    *live += 1;
                    if *live > MAX_TERMS {
                        return Err(PolyTooLarge);
                    }
                }
                *cell = cell.checked_add(c).ok_or(PolyTooLarge)?;
            }
            Acc::Sparse(map) => {
                let len = map.len();
                match map.entry(e) {
                    Entry::Occupied(mut slot) => {
                        let v = slot.get_mut();
                        *v = v.checked_add(c).ok_or(PolyTooLarge)?;
                    }
                    Entry::Vacant(slot) => {
                        if len >= MAX_TERMS {
                            return Err(PolyTooLarge);
                        }
                        slot.insert(c);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> FinPoly {
        let terms = match self {
            Acc::Dense { lo, cells, .. } => cells
                .into_iter()
                .zip(lo..)
                .filter(|&(c, _)| c != 0)
                .map(|(c, e)| (e, c))
                .collect(),
            Acc::Sparse(map) => map.into_iter().collect(),
        };
        FinPoly { terms }
    }
}

/// `base^exp` in `u128`, `None` on overflow (`0^0 = 1`).
fn pow_u128(base: u128, exp: u64) -> Option<u128> {
    match base {
        0 => Some(u128::from(exp == 0)),
        1 => Some(1),
        // base ≥ 2, so base^128 ≥ 2^128 already overflows.
        _ => match u32::try_from(exp) {
            Ok(e) if e < 128 => base.checked_pow(e),
            _ => None,
        },
    }
}

impl FinPoly {
    /// The zero polynomial `0` (no positions).
    pub fn zero() -> Self {
        FinPoly::default()
    }

    /// The unit `1 = y^0` (one position, no directions).
    pub fn one() -> Self {
        FinPoly::constant(1)
    }

    /// The identity polynomial `y`.
    pub fn y() -> Self {
        FinPoly::monomial(1, 1)
    }

    /// The constant polynomial `n y^0`.
    pub fn constant(n: u128) -> Self {
        FinPoly::monomial(n, 0)
    }

    /// The monomial `coef y^exp` (zero when `coef == 0`).
    pub fn monomial(coef: u128, exp: u64) -> Self {
        let mut terms = BTreeMap::new();
        if coef != 0 {
            terms.insert(exp, coef);
        }
        FinPoly { terms }
    }

    /// The terms `(exponent, coefficient)` in descending exponent order; every
    /// coefficient is non-zero.
    pub fn terms(&self) -> impl Iterator<Item = (u64, u128)> + '_ {
        self.terms.iter().rev().map(|(&e, &c)| (e, c))
    }

    fn is_zero(&self) -> bool {
        self.terms.is_empty()
    }

    fn is_one(&self) -> bool {
        self.terms.len() == 1 && self.terms.get(&0) == Some(&1)
    }

    fn is_y(&self) -> bool {
        self.terms.len() == 1 && self.terms.get(&1) == Some(&1)
    }

    fn min_exp(&self) -> Option<u64> {
        self.terms.keys().next().copied()
    }

    fn max_exp(&self) -> Option<u64> {
        self.terms.keys().next_back().copied()
    }

    /// The sum `p + q`.
    pub fn add(&self, q: &Self) -> Result<Self, PolyTooLarge> {
        let (big, small) = if self.terms.len() >= q.terms.len() {
            (self, q)
        } else {
            (q, self)
        };
        let mut terms = big.terms.clone();
        for (&e, &c) in &small.terms {
            match terms.entry(e) {
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let v = slot.get_mut();
                    *v = v.checked_add(c).ok_or(PolyTooLarge)?;
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(c);
                }
            }
        }
        if terms.len() > MAX_TERMS {
            return Err(PolyTooLarge);
        }
        Ok(FinPoly { terms })
    }

    /// The cartesian product `p × q = Σ c d y^(e+f)`.
    pub fn product(&self, q: &Self) -> Result<Self, PolyTooLarge> {
        self.product_in(q, &mut Budget::new())
    }

    /// The parallel (Dirichlet) product `p ⊗ q = Σ c d y^(e·f)`.
    pub fn tensor(&self, q: &Self) -> Result<Self, PolyTooLarge> {
        self.combine(q, &mut Budget::new(), u64::checked_mul)
    }

    /// The substitution product `p ◁ q = Σ c (q^×e)`, i.e. `p(q(y))`.
    pub fn compose(&self, q: &Self) -> Result<Self, PolyTooLarge> {
        let budget = &mut Budget::new();
        if self.is_zero() || q.is_y() {
            return Ok(self.clone());
        }
        if self.is_y() {
            return Ok(q.clone());
        }
        let Some(q_deg) = q.max_exp() else {
            // q = 0: only the constant term of p survives (0^0 = 1).
            return Ok(FinPoly::constant(self.terms.get(&0).copied().unwrap_or(0)));
        };
        let (Some(p_min), Some(p_deg)) = (self.min_exp(), self.max_exp()) else {
            return Ok(FinPoly::zero());
        };
        // The top term of p contributes c·q^deg p, which contains y^(deg p · deg q).
        let hi = p_deg.checked_mul(q_deg).ok_or(PolyTooLarge)?;
        let lo = p_min.saturating_mul(q.min_exp().unwrap_or(0));
        let mut acc = Acc::new(lo, hi, 1 << 16);
        // cur = q^cur_exp, advanced through the exponents of p in ascending order.
        let mut cur = FinPoly::one();
        let mut cur_exp = 0u64;
        for (&e, &c) in &self.terms {
            if e > cur_exp {
                let step = q.power_in(e - cur_exp, budget)?;
                cur = cur.product_in(&step, budget)?;
                cur_exp = e;
            }
            budget.charge(cur.terms.len() as u128)?;
            for (&f, &d) in &cur.terms {
                acc.add(f, c.checked_mul(d).ok_or(PolyTooLarge)?)?;
            }
        }
        Ok(acc.finish())
    }

    /// The cartesian power `p^×n` (with `p^×0 = 1`), by repeated squaring.
    pub fn power(&self, n: u64) -> Result<Self, PolyTooLarge> {
        self.power_in(n, &mut Budget::new())
    }

    /// The number of positions `p(1)`, i.e. the sum of the coefficients.
    pub fn positions(&self) -> Result<u128, PolyTooLarge> {
        self.terms
            .values()
            .try_fold(0u128, |acc, &c| acc.checked_add(c))
            .ok_or(PolyTooLarge)
    }

    /// The value `p(x) = Σ c x^e` at a natural number `x`.
    pub fn eval(&self, x: u128) -> Result<u128, PolyTooLarge> {
        self.terms
            .iter()
            .try_fold(0u128, |acc, (&e, &c)| {
                acc.checked_add(c.checked_mul(pow_u128(x, e)?)?)
            })
            .ok_or(PolyTooLarge)
    }

    fn product_in(&self, q: &Self, budget: &mut Budget) -> Result<Self, PolyTooLarge> {
        if self.is_one() {
            return Ok(q.clone());
        }
        if q.is_one() {
            return Ok(self.clone());
        }
        self.combine(q, budget, u64::checked_add)
    }

    /// `Σ c d y^(op(e, f))` for a monotone `op` (addition or multiplication).
    fn combine(
        &self,
        q: &Self,
        budget: &mut Budget,
        op: fn(u64, u64) -> Option<u64>,
    ) -> Result<Self, PolyTooLarge> {
        let (Some(pl), Some(ph), Some(ql), Some(qh)) =
            (self.min_exp(), self.max_exp(), q.min_exp(), q.max_exp())
        else {
            return Ok(FinPoly::zero());
        };
        let pairs = self.terms.len() as u128 * q.terms.len() as u128;
        budget.charge(pairs)?;
        // op is monotone, so the result's exponents lie in op(pl, ql)..=op(ph, qh),
        // and op(ph, qh) does occur in the result: its overflow is genuine.
        let hi = op(ph, qh).ok_or(PolyTooLarge)?;
        let lo = op(pl, ql).ok_or(PolyTooLarge)?;
        let dense_span =
            u64::try_from(pairs.saturating_mul(4).saturating_add(64)).unwrap_or(u64::MAX);
        let mut acc = Acc::new(lo, hi, dense_span);
        for (&e, &c) in &self.terms {
            for (&f, &d) in &q.terms {
                let exp = op(e, f).ok_or(PolyTooLarge)?;
                acc.add(exp, c.checked_mul(d).ok_or(PolyTooLarge)?)?;
            }
        }
        Ok(acc.finish())
    }

    fn power_in(&self, n: u64, budget: &mut Budget) -> Result<Self, PolyTooLarge> {
        if n == 0 {
            return Ok(FinPoly::one());
        }
        if n == 1 || self.is_zero() || self.is_one() {
            return Ok(self.clone());
        }
        if self.terms.len() == 1 {
            let (&e, &c) = self.terms.iter().next().ok_or(PolyTooLarge)?;
            let coef = pow_u128(c, n).ok_or(PolyTooLarge)?;
            let exp = e.checked_mul(n).ok_or(PolyTooLarge)?;
            return Ok(FinPoly::monomial(coef, exp));
        }
        // At least two terms: the top exponent of the result is deg p · n.
        self.max_exp()
            .unwrap_or(0)
            .checked_mul(n)
            .ok_or(PolyTooLarge)?;
        if n >= NON_MONOMIAL_POWER_LIMIT {
            return Err(PolyTooLarge);
        }
        // Every intermediate p^k (k ≤ n) is dominated termwise by a shift of
        // p^n, so its failures are genuine; the base is only squared while a
        // higher bit of n remains.
        let mut result = FinPoly::one();
        let mut base = self.clone();
        let mut k = n;
        loop {
            if k & 1 == 1 {
                result = result.product_in(&base, budget)?;
            }
            k >>= 1;
            if k == 0 {
                return Ok(result);
            }
            base = base.product_in(&base, budget)?;
        }
    }
}

impl fmt::Display for FinPoly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        for (i, (e, c)) in self.terms().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            if e == 0 {
                write!(f, "{c}")?;
                continue;
            }
            if c != 1 {
                write!(f, "{c}")?;
            }
            if e == 1 {
                f.write_str("y")?;
            } else {
                write!(f, "y^{e}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    /// Raw, unnormalised term list: duplicates allowed, zero coefficients allowed.
    type Raw = Vec<(u64, u128)>;

    /// Builds a polynomial from raw terms by summing monomials.
    fn build(raw: &[(u64, u128)]) -> FinPoly {
        raw.iter().fold(FinPoly::zero(), |acc, &(e, c)| {
            acc.add(&FinPoly::monomial(c, e)).unwrap()
        })
    }

    /// Reference dense model: coefficient vector indexed by exponent.
    fn dense(raw: &[(u64, u128)]) -> Vec<u128> {
        let len = raw.iter().map(|&(e, _)| e as usize + 1).max().unwrap_or(0);
        let mut v = vec![0u128; len];
        for &(e, c) in raw {
            v[e as usize] += c;
        }
        v
    }

    fn from_dense(v: &[u128]) -> Vec<(u64, u128)> {
        // Descending exponents, zero coefficients dropped: the `terms()` order.
        v.iter()
            .enumerate()
            .rev()
            .filter(|&(_, &c)| c != 0)
            .map(|(e, &c)| (e as u64, c))
            .collect()
    }

    fn dense_add(a: &[u128], b: &[u128]) -> Vec<u128> {
        let mut v = vec![0; a.len().max(b.len())];
        for (i, &c) in a.iter().enumerate() {
            v[i] += c;
        }
        for (i, &c) in b.iter().enumerate() {
            v[i] += c;
        }
        v
    }

    fn dense_mul(a: &[u128], b: &[u128]) -> Vec<u128> {
        if a.is_empty() || b.is_empty() {
            return Vec::new();
        }
        let mut v = vec![0; a.len() + b.len() - 1];
        for (i, &c) in a.iter().enumerate() {
            for (j, &d) in b.iter().enumerate() {
                v[i + j] += c * d;
            }
        }
        v
    }

    fn dense_tensor(a: &[u128], b: &[u128]) -> Vec<u128> {
        if a.is_empty() || b.is_empty() {
            return Vec::new();
        }
        let mut v = vec![0; (a.len() - 1) * (b.len() - 1) + 1];
        for (i, &c) in a.iter().enumerate() {
            for (j, &d) in b.iter().enumerate() {
                v[i * j] += c * d;
            }
        }
        v
    }

    /// Horner's rule: a(b) = (((a_n) b + a_{n-1}) b + ...) b + a_0.
    fn dense_compose(a: &[u128], b: &[u128]) -> Vec<u128> {
        let mut acc: Vec<u128> = Vec::new();
        for &c in a.iter().rev() {
            acc = dense_add(&dense_mul(&acc, b), &[c]);
        }
        acc
    }

    /// Naive evaluation of raw terms by repeated multiplication.
    fn naive_eval(raw: &[(u64, u128)], x: u128) -> u128 {
        raw.iter()
            .map(|&(e, c)| c * (0..e).fold(1u128, |acc, _| acc * x))
            .sum()
    }

    fn terms_of(p: &FinPoly) -> Vec<(u64, u128)> {
        p.terms().collect()
    }

    fn eval_result(p: &FinPoly, x: u128) -> u128 {
        naive_eval(&terms_of(p), x)
    }

    fn p(raw: &[(u64, u128)]) -> FinPoly {
        build(raw)
    }

    fn assert_normal(p: &FinPoly) {
        let ts = terms_of(p);
        assert!(
            ts.iter().all(|&(_, c)| c != 0),
            "zero coefficient in {ts:?}"
        );
        assert!(
            ts.windows(2).all(|w| w[0].0 > w[1].0),
            "not descending: {ts:?}"
        );
    }

    // ---- known values ------------------------------------------------------

    #[test]
    fn known_compose() {
        let a = p(&[(2, 1), (1, 1)]);
        let b = p(&[(3, 1), (0, 1)]);
        let r = a.compose(&b).unwrap();
        assert_eq!(terms_of(&r), vec![(6, 1), (3, 3), (0, 2)]);
        assert_eq!(r.to_string(), "y^6 + 3y^3 + 2");
    }

    #[test]
    fn known_product() {
        let a = p(&[(2, 1), (1, 1)]);
        let b = p(&[(3, 1), (0, 1)]);
        let r = a.product(&b).unwrap();
        assert_eq!(terms_of(&r), vec![(5, 1), (4, 1), (2, 1), (1, 1)]);
        assert_eq!(r.to_string(), "y^5 + y^4 + y^2 + y");
    }

    #[test]
    fn known_tensor() {
        let a = p(&[(2, 1), (1, 1)]);
        let b = p(&[(3, 1), (0, 1)]);
        let r = a.tensor(&b).unwrap();
        assert_eq!(terms_of(&r), vec![(6, 1), (3, 1), (0, 2)]);
        assert_eq!(r.to_string(), "y^6 + y^3 + 2");
    }

    #[test]
    fn known_power_and_display() {
        let y1 = FinPoly::y().add(&FinPoly::one()).unwrap();
        assert_eq!(y1.power(2).unwrap().to_string(), "y^2 + 2y + 1");
        assert_eq!(y1.power(0).unwrap(), FinPoly::one());
        assert_eq!(y1.power(1).unwrap(), y1);
        let sq = y1.product(&y1).unwrap();
        assert_eq!(
            sq.product(&FinPoly::constant(2)).unwrap().to_string(),
            "2y^2 + 4y + 2"
        );
        // (y+1)^5 = y^5 + 5y^4 + 10y^3 + 10y^2 + 5y + 1
        assert_eq!(
            terms_of(&y1.power(5).unwrap()),
            vec![(5, 1), (4, 5), (3, 10), (2, 10), (1, 5), (0, 1)]
        );
        // (y+1)^127: middle binomial coefficient C(127, 63).
        let big = y1.power(127).unwrap();
        let row = (0..127).fold(vec![1u128], |row, _| {
            let mut next = vec![1u128; row.len() + 1];
            for i in 1..row.len() {
                next[i] = row[i - 1] + row[i];
            }
            next
        });
        let c63 = row[63];
        assert_eq!(big.terms().find(|&(e, _)| e == 63), Some((63, c63)));
        assert_eq!(big.positions().unwrap(), 1u128 << 127);
    }

    #[test]
    fn known_display() {
        assert_eq!(p(&[(3, 2), (1, 1)]).to_string(), "2y^3 + y");
        assert_eq!(FinPoly::y().to_string(), "y");
        assert_eq!(FinPoly::zero().to_string(), "0");
        assert_eq!(FinPoly::one().to_string(), "1");
        assert_eq!(FinPoly::constant(7).to_string(), "7");
        assert_eq!(FinPoly::monomial(3, 1).to_string(), "3y");
        assert_eq!(FinPoly::monomial(0, 9).to_string(), "0");
        assert_eq!(p(&[(4, 1), (0, 1), (0, 2)]).to_string(), "y^4 + 3");
        assert_eq!(
            FinPoly::monomial(u128::MAX, u64::MAX).to_string(),
            format!("{}y^{}", u128::MAX, u64::MAX)
        );
    }

    #[test]
    fn constructors_and_queries() {
        assert_eq!(FinPoly::zero(), FinPoly::default());
        assert_eq!(FinPoly::constant(0), FinPoly::zero());
        assert_eq!(FinPoly::monomial(1, 0), FinPoly::one());
        assert_eq!(terms_of(&FinPoly::y()), vec![(1, 1)]);
        let q = p(&[(2, 3), (0, 4)]);
        assert_eq!(q.positions().unwrap(), 7);
        assert_eq!(q.eval(0).unwrap(), 4);
        assert_eq!(q.eval(5).unwrap(), 79);
        assert_eq!(FinPoly::zero().eval(3).unwrap(), 0);
        assert_eq!(FinPoly::monomial(5, u64::MAX).eval(0).unwrap(), 0);
        assert_eq!(FinPoly::monomial(5, u64::MAX).eval(1).unwrap(), 5);
    }

    #[test]
    fn compose_special_cases() {
        let q = p(&[(3, 2), (1, 1), (0, 5)]);
        assert_eq!(FinPoly::one().compose(&q).unwrap(), FinPoly::one());
        assert_eq!(
            FinPoly::one().compose(&FinPoly::zero()).unwrap(),
            FinPoly::one()
        );
        assert_eq!(FinPoly::zero().compose(&q).unwrap(), FinPoly::zero());
        assert_eq!(q.compose(&FinPoly::y()).unwrap(), q);
        assert_eq!(FinPoly::y().compose(&q).unwrap(), q);
        // q ◁ 0 keeps the constant term only.
        assert_eq!(q.compose(&FinPoly::zero()).unwrap(), FinPoly::constant(5));
        assert_eq!(
            p(&[(3, 2)]).compose(&FinPoly::zero()).unwrap(),
            FinPoly::zero()
        );
        // q ◁ constant = constant q(n).
        assert_eq!(
            q.compose(&FinPoly::constant(2)).unwrap(),
            FinPoly::constant(23)
        );
        // Huge sparse exponents with a monomial argument stay cheap.
        let sparse = p(&[(u64::MAX, 1), (1 << 40, 2), (0, 3)]);
        assert_eq!(sparse.compose(&FinPoly::y()).unwrap(), sparse);
        assert_eq!(
            sparse.compose(&FinPoly::one()).unwrap(),
            FinPoly::constant(6)
        );
        assert_eq!(
            p(&[(1 << 40, 1)]).compose(&p(&[(1 << 20, 1)])).unwrap(),
            FinPoly::monomial(1, 1 << 60)
        );
    }

    // ---- limits ------------------------------------------------------------

    fn quick<T>(f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        out
    }

    #[test]
    fn overflow_exponents() {
        let a = FinPoly::monomial(1, 1 << 40);
        assert_eq!(quick(|| a.tensor(&a)), Err(PolyTooLarge));
        assert_eq!(quick(|| a.compose(&a)), Err(PolyTooLarge));
        let top = FinPoly::monomial(1, u64::MAX);
        assert_eq!(top.product(&FinPoly::y()), Err(PolyTooLarge));
        assert_eq!(top.product(&FinPoly::one()), Ok(top.clone()));
        assert_eq!(FinPoly::y().power(u64::MAX), Ok(top.clone()));
        assert_eq!(FinPoly::monomial(1, 2).power(u64::MAX), Err(PolyTooLarge));
        assert_eq!(
            FinPoly::monomial(1, 2).power(1 << 62),
            Ok(FinPoly::monomial(1, 1 << 63))
        );
        let two_terms = p(&[(1 << 40, 1), (0, 1)]);
        assert_eq!(quick(|| two_terms.power(1 << 30)), Err(PolyTooLarge));
    }

    #[test]
    fn overflow_coefficients() {
        let y1 = p(&[(1, 1), (0, 1)]);
        assert_eq!(quick(|| y1.power(u64::MAX)), Err(PolyTooLarge));
        assert_eq!(quick(|| y1.power(199)), Err(PolyTooLarge));
        assert_eq!(quick(|| y1.power(1000)), Err(PolyTooLarge));
        assert_eq!(
            FinPoly::constant(2).power(127),
            Ok(FinPoly::constant(1 << 127))
        );
        assert_eq!(FinPoly::constant(2).power(128), Err(PolyTooLarge));
        assert_eq!(FinPoly::constant(1).power(u64::MAX), Ok(FinPoly::one()));
        assert_eq!(FinPoly::zero().power(u64::MAX), Ok(FinPoly::zero()));
        assert_eq!(FinPoly::zero().power(0), Ok(FinPoly::one()));
        let m = FinPoly::constant(u128::MAX);
        assert_eq!(m.add(&FinPoly::one()), Err(PolyTooLarge));
        assert_eq!(m.product(&FinPoly::constant(2)), Err(PolyTooLarge));
        assert_eq!(m.tensor(&FinPoly::constant(2)), Err(PolyTooLarge));
        assert_eq!(m.add(&FinPoly::y()).unwrap().positions(), Err(PolyTooLarge));
        assert_eq!(FinPoly::y().eval(u128::MAX), Ok(u128::MAX));
        assert_eq!(FinPoly::monomial(1, 2).eval(1 << 64), Err(PolyTooLarge));
        assert_eq!(FinPoly::monomial(1, 200).eval(2), Err(PolyTooLarge));
        // (y^200 + 1) ◁ (y + 1) contains (y+1)^200.
        assert_eq!(
            quick(|| p(&[(200, 1), (0, 1)]).compose(&y1)),
            Err(PolyTooLarge)
        );
        assert_eq!(
            quick(|| p(&[(u64::MAX, 1), (0, 1)]).compose(&y1)),
            Err(PolyTooLarge)
        );
        // Coefficient overflow in the sum of a composite.
        assert_eq!(
            p(&[(1, u128::MAX)])
                .compose(&p(&[(1, 1), (0, 1)]))
                .unwrap()
                .to_string(),
            format!("{}y + {}", u128::MAX, u128::MAX)
        );
        assert_eq!(
            p(&[(1, u128::MAX), (0, 1)]).compose(&p(&[(1, 1), (0, 1)])),
            Err(PolyTooLarge)
        );
    }

    /// A polynomial `Σ_{i<n} y^(start + i·step)` built directly.
    fn many(n: u64, start: u64, step: u64) -> FinPoly {
        FinPoly {
            terms: (0..n).map(|i| (start + i * step, 1)).collect(),
        }
    }

    #[test]
    fn too_many_terms() {
        let a = many(600_000, 0, 2);
        let b = many(600_000, 1, 2);
        assert_eq!(quick(|| a.add(&b)), Err(PolyTooLarge));
        assert_eq!(quick(|| a.add(&a)).unwrap().terms().count(), 600_000);
        // 2000 × 2000 pairs, all with distinct exponents: 4M > 1M terms.
        let c = many(2000, 0, 1);
        let d = many(2000, 0, 2000);
        assert_eq!(quick(|| c.product(&d)), Err(PolyTooLarge));
        // Dense case with 2000 × 2000 pairs collapsing to 3999 terms is fine.
        let e = quick(|| c.product(&c)).unwrap();
        assert_eq!(e.terms().count(), 3999);
        assert_eq!(e.positions().unwrap(), 4_000_000);
    }

    #[test]
    fn too_much_work() {
        // 8000 × 8000 = 64M term multiplications > 50M.
        let a = many(8000, 0, 1);
        assert_eq!(quick(|| a.product(&a)), Err(PolyTooLarge));
        assert_eq!(quick(|| a.tensor(&a)), Err(PolyTooLarge));
        assert_eq!(quick(|| a.power(2)), Err(PolyTooLarge));
        // p ◁ q with q = (1000-term) and deg p = 100: q^100 has 99,901 terms,
        // the repeated squarings need far more than 50M multiplications.
        let q = many(1000, 0, 1);
        assert_eq!(quick(|| p(&[(100, 1)]).compose(&q)), Err(PolyTooLarge));
    }

    #[test]
    fn error_display() {
        let msg = PolyTooLarge.to_string();
        assert!(
            msg.starts_with("polynomial too large to compute: "),
            "{msg}"
        );
        let _: &dyn std::error::Error = &PolyTooLarge;
    }

    // ---- properties --------------------------------------------------------

    fn small_raw() -> impl Strategy<Value = Raw> {
        prop::collection::vec((0u64..=4, 0u128..=5), 0..=4)
    }

    fn wild_raw() -> impl Strategy<Value = Raw> {
        let exp = prop_oneof![0u64..=8, any::<u64>(), (0u32..64).prop_map(|k| 1u64 << k)];
        let coef = prop_oneof![
            0u128..=8,
            any::<u128>(),
            (0u32..128).prop_map(|k| 1u128 << k)
        ];
        prop::collection::vec((exp, coef), 0..=3)
    }

    /// Builds a wild polynomial, saturating duplicate sums to stay total.
    fn build_wild(raw: &[(u64, u128)]) -> FinPoly {
        raw.iter().fold(FinPoly::zero(), |acc, &(e, c)| {
            acc.add(&FinPoly::monomial(c, e)).unwrap_or(acc)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn normal_form(a in small_raw()) {
            let pa = build(&a);
            assert_normal(&pa);
            prop_assert_eq!(terms_of(&pa), from_dense(&dense(&a)));
        }

        #[test]
        fn matches_dense_model(a in small_raw(), b in small_raw()) {
            let (pa, pb) = (build(&a), build(&b));
            let (da, db) = (dense(&a), dense(&b));
            prop_assert_eq!(terms_of(&pa.add(&pb).unwrap()), from_dense(&dense_add(&da, &db)));
            prop_assert_eq!(terms_of(&pa.product(&pb).unwrap()), from_dense(&dense_mul(&da, &db)));
            prop_assert_eq!(terms_of(&pa.tensor(&pb).unwrap()), from_dense(&dense_tensor(&da, &db)));
            prop_assert_eq!(terms_of(&pa.compose(&pb).unwrap()), from_dense(&dense_compose(&da, &db)));
        }

        #[test]
        fn power_matches_repeated_product(a in small_raw(), n in 0u64..=6) {
            let pa = build(&a);
            let da = dense(&a);
            let expected = (0..n).fold(vec![1u128], |acc, _| dense_mul(&acc, &da));
            prop_assert_eq!(terms_of(&pa.power(n).unwrap()), from_dense(&expected));
        }

        #[test]
        fn eval_is_homomorphism(a in small_raw(), b in small_raw()) {
            let (pa, pb) = (build(&a), build(&b));
            for x in 0u128..4 {
                let (ax, bx) = (naive_eval(&a, x), naive_eval(&b, x));
                prop_assert_eq!(pa.eval(x).unwrap(), ax);
                prop_assert_eq!(eval_result(&pa.add(&pb).unwrap(), x), ax + bx);
                prop_assert_eq!(eval_result(&pa.product(&pb).unwrap(), x), ax * bx);
                prop_assert_eq!(eval_result(&pa.compose(&pb).unwrap(), x), naive_eval(&a, bx));
                let tensor_direct: u128 = a.iter()
                    .flat_map(|&(e, c)| b.iter().map(move |&(f, d)| (e * f, c * d)))
                    .map(|(g, k)| k * x.pow(g as u32))
                    .sum();
                prop_assert_eq!(eval_result(&pa.tensor(&pb).unwrap(), x), tensor_direct);
            }
            prop_assert_eq!(pa.positions().unwrap(), a.iter().map(|&(_, c)| c).sum::<u128>());
        }

        #[test]
        fn associativity(a in small_raw(), b in small_raw(), c in small_raw()) {
            let (pa, pb, pc) = (build(&a), build(&b), build(&c));
            prop_assert_eq!(
                pa.add(&pb).unwrap().add(&pc).unwrap(),
                pa.add(&pb.add(&pc).unwrap()).unwrap()
            );
            prop_assert_eq!(
                pa.product(&pb).unwrap().product(&pc).unwrap(),
                pa.product(&pb.product(&pc).unwrap()).unwrap()
            );
            prop_assert_eq!(
                pa.tensor(&pb).unwrap().tensor(&pc).unwrap(),
                pa.tensor(&pb.tensor(&pc).unwrap()).unwrap()
            );
            prop_assert_eq!(
                pa.compose(&pb).unwrap().compose(&pc).unwrap(),
                pa.compose(&pb.compose(&pc).unwrap()).unwrap()
            );
        }

        #[test]
        fn commutativity(a in small_raw(), b in small_raw()) {
            let (pa, pb) = (build(&a), build(&b));
            prop_assert_eq!(pa.add(&pb).unwrap(), pb.add(&pa).unwrap());
            prop_assert_eq!(pa.product(&pb).unwrap(), pb.product(&pa).unwrap());
            prop_assert_eq!(pa.tensor(&pb).unwrap(), pb.tensor(&pa).unwrap());
        }

        #[test]
        fn distributivity(a in small_raw(), b in small_raw(), c in small_raw()) {
            let (pa, pb, pc) = (build(&a), build(&b), build(&c));
            prop_assert_eq!(
                pa.product(&pb.add(&pc).unwrap()).unwrap(),
                pa.product(&pb).unwrap().add(&pa.product(&pc).unwrap()).unwrap()
            );
            prop_assert_eq!(
                pa.add(&pb).unwrap().compose(&pc).unwrap(),
                pa.compose(&pc).unwrap().add(&pb.compose(&pc).unwrap()).unwrap()
            );
            prop_assert_eq!(
                pa.tensor(&pb.add(&pc).unwrap()).unwrap(),
                pa.tensor(&pb).unwrap().add(&pa.tensor(&pc).unwrap()).unwrap()
            );
        }

        #[test]
        fn units(a in small_raw()) {
            let pa = build(&a);
            let (zero, one, y) = (FinPoly::zero(), FinPoly::one(), FinPoly::y());
            prop_assert_eq!(&pa.add(&zero).unwrap(), &pa);
            prop_assert_eq!(&zero.add(&pa).unwrap(), &pa);
            prop_assert_eq!(&pa.product(&one).unwrap(), &pa);
            prop_assert_eq!(&one.product(&pa).unwrap(), &pa);
            prop_assert_eq!(&pa.tensor(&y).unwrap(), &pa);
            prop_assert_eq!(&y.tensor(&pa).unwrap(), &pa);
            prop_assert_eq!(&pa.compose(&y).unwrap(), &pa);
            prop_assert_eq!(&y.compose(&pa).unwrap(), &pa);
            prop_assert_eq!(pa.product(&zero).unwrap(), zero.clone());
            prop_assert_eq!(pa.tensor(&zero).unwrap(), zero.clone());
            prop_assert_eq!(zero.compose(&pa).unwrap(), zero.clone());
            prop_assert_eq!(one.compose(&pa).unwrap(), one.clone());
            prop_assert_eq!(pa.power(0).unwrap(), one);
        }

        /// Arbitrary large inputs never panic or hang, and Ok results are in
        /// normal form and agree with evaluation where that is computable.
        #[test]
        fn wild_inputs_are_total(a in wild_raw(), b in wild_raw(), n in prop_oneof![0u64..=300, any::<u64>()], x in 0u128..=3) {
            let (pa, pb) = (build_wild(&a), build_wild(&b));
            let start = Instant::now();
            let results = [pa.add(&pb), pa.product(&pb), pa.tensor(&pb), pa.compose(&pb), pa.power(n)];
            for r in results.iter().flatten() {
                assert_normal(r);
            }
            let _ = (pa.positions(), pa.eval(x), pa.to_string());
            if let (Ok(r), Ok(ax), Ok(bx)) = (pa.product(&pb), pa.eval(x), pb.eval(x))
                && let (Some(want), Ok(got)) = (ax.checked_mul(bx), r.eval(x))
            {
                prop_assert_eq!(got, want);
            }
            if let (Ok(r), Ok(bx)) = (pa.compose(&pb), pb.eval(x))
                && let (Ok(want), Ok(got)) = (pa.eval(bx), r.eval(x))
            {
                prop_assert_eq!(got, want);
            }
            prop_assert!(start.elapsed() < Duration::from_secs(5));
        }
    }
}
