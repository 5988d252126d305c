//! Arithmetic on edwards25519 for Ed25519 signature verification (RFC 8032), variable time.
//!
//! Why this exists: ring 0.17 verifies Ed25519 with portable C that decodes the public key on
//! every call and walks all 253 bits of both scalars with its own chain of doublings; in a wasm
//! VM (32-bit limbs) that made EdDSA the slowest signature after RSA. Nothing in a verification
//! is secret, so this module gives up constant time for speed, as the `p256` module does:
//! - field elements are ten signed limbs of alternately 26 and 25 bits with 64-bit products
//!   (wasm32 multiplies 64-bit integers natively, has no 128-bit product); the 100 products of
//!   a multiplication are written out, because the crate is built for size, which leaves loops
//!   rolled;
//! - points are in extended coordinates (X : Y : Z : T) on −x² + y² = 1 + d·x²·y², with the
//!   formulas of Hisil, Wong, Carter and Dawson (2008), which are complete on this curve: no
//!   input needs a special case;
//! - `[S]B − [k]A` is one pass: each scalar is cut into eight 32-bit pieces, and the width-w NAF
//!   digits of all sixteen pieces are added in from tables of odd multiples of `2^(32j)·B` and
//!   `2^(32j)·A` in affine form over one shared chain of at most 32 doublings (instead of 253);
//! - B's tables are built once per VM on first use (30 KiB of memory, not in the module), A's
//!   once per key at import (7.5 KiB per key), together with the decoding of A, so a
//!   verification does no table or decoding work; then the encoding of the sum (one inversion)
//!   is compared with R.
//!
//! Bounds: a limb of a reduced element (the output of a product, a square or [`Fe::carry`]) is
//! below 2^26 in magnitude (2^25 for odd limbs, up to a small excess on limb 1). A product's
//! largest sum of terms is 142.5·2^52·m·n when its operands' limbs are at most m and n times
//! those of a reduced element; it stays below 2^63 while m·n ≤ 14. Every operand of a product
//! here is reduced or the sum or difference of at most three reduced elements, and no product
//! has m·n above 9: the comments at each formula give m for the operands that are not reduced.
//! The tests check products at the limbs' extremes up to m·n = 12 against a reference.

use std::sync::OnceLock;

/// Width of limb i: 26 bits for even i, 25 for odd.
const fn width(i: usize) -> u32 {
    if i & 1 == 0 {
        26
    } else {
        25
    }
}

/// An element of GF(2^255 − 19): Σ limb[i]·2^⌈25.5·i⌉, limbs signed and not necessarily
/// reduced (see the module's bounds). Compare elements with [`Fe::to_bytes`], never limb by
/// limb.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fe([i32; 10]);

/// Folds ten 64-bit column sums into a reduced element: carries up the limbs, the carry out of
/// the top (weight 2^255 ≡ 19) back into limb 0, then limb 0 once more.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn reduce(
    mut h0: i64,
    mut h1: i64,
    mut h2: i64,
    mut h3: i64,
    mut h4: i64,
    mut h5: i64,
    mut h6: i64,
    mut h7: i64,
    mut h8: i64,
    mut h9: i64,
) -> Fe {
    const M26: i64 = (1 << 26) - 1;
    const M25: i64 = (1 << 25) - 1;
    h1 += h0 >> 26;
    h0 &= M26;
    h2 += h1 >> 25;
    h1 &= M25;
    h3 += h2 >> 26;
    h2 &= M26;
    h4 += h3 >> 25;
    h3 &= M25;
    h5 += h4 >> 26;
    h4 &= M26;
    h6 += h5 >> 25;
    h5 &= M25;
    h7 += h6 >> 26;
    h6 &= M26;
    h8 += h7 >> 25;
    h7 &= M25;
    h9 += h8 >> 26;
    h8 &= M26;
    h0 += 19 * (h9 >> 25);
    h9 &= M25;
    h1 += h0 >> 26;
    h0 &= M26;
    // Every limb now fits its width (limb 1 up to 2^25 plus a carry below 2^17), so in i32.
    Fe([
        h0 as i32, h1 as i32, h2 as i32, h3 as i32, h4 as i32, h5 as i32, h6 as i32, h7 as i32,
        h8 as i32, h9 as i32,
    ])
}

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 10]);
    pub(crate) const ONE: Fe = Fe([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    pub(crate) fn small(v: i32) -> Fe {
        Fe([v, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    pub(crate) fn add(&self, o: &Fe) -> Fe {
        let mut out = self.0;
        for (a, b) in out.iter_mut().zip(o.0) {
            *a += b;
        }
        Fe(out)
    }

    pub(crate) fn sub(&self, o: &Fe) -> Fe {
        let mut out = self.0;
        for (a, b) in out.iter_mut().zip(o.0) {
            *a -= b;
        }
        Fe(out)
    }

    pub(crate) fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    /// The same value with reduced limbs.
    pub(crate) fn carry(&self) -> Fe {
        let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9] = self.0.map(i64::from);
        reduce(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9)
    }

    /// The product; term k of the sum for limb (i + j) mod 10 is f_i·g_j, doubled when i and j
    /// are both odd (their weights add up to one bit more than the limb's), times 19 when
    /// i + j ≥ 10 (2^255 ≡ 19).
    pub(crate) fn mul(&self, g: &Fe) -> Fe {
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);
        let [g0, g1, g2, g3, g4, g5, g6, g7, g8, g9] = g.0.map(i64::from);
        let (f1_2, f3_2, f5_2, f7_2, f9_2) = (2 * f1, 2 * f3, 2 * f5, 2 * f7, 2 * f9);
        let (g1_19, g2_19, g3_19, g4_19, g5_19) = (19 * g1, 19 * g2, 19 * g3, 19 * g4, 19 * g5);
        let (g6_19, g7_19, g8_19, g9_19) = (19 * g6, 19 * g7, 19 * g8, 19 * g9);
        let h0 = f0 * g0
            + f1_2 * g9_19
            + f2 * g8_19
            + f3_2 * g7_19
            + f4 * g6_19
            + f5_2 * g5_19
            + f6 * g4_19
            + f7_2 * g3_19
            + f8 * g2_19
            + f9_2 * g1_19;
        let h1 = f0 * g1
            + f1 * g0
            + f2 * g9_19
            + f3 * g8_19
            + f4 * g7_19
            + f5 * g6_19
            + f6 * g5_19
            + f7 * g4_19
            + f8 * g3_19
            + f9 * g2_19;
        let h2 = f0 * g2
            + f1_2 * g1
            + f2 * g0
            + f3_2 * g9_19
            + f4 * g8_19
            + f5_2 * g7_19
            + f6 * g6_19
            + f7_2 * g5_19
            + f8 * g4_19
            + f9_2 * g3_19;
        let h3 = f0 * g3
            + f1 * g2
            + f2 * g1
            + f3 * g0
            + f4 * g9_19
            + f5 * g8_19
            + f6 * g7_19
            + f7 * g6_19
            + f8 * g5_19
            + f9 * g4_19;
        let h4 = f0 * g4
            + f1_2 * g3
            + f2 * g2
            + f3_2 * g1
            + f4 * g0
            + f5_2 * g9_19
            + f6 * g8_19
            + f7_2 * g7_19
            + f8 * g6_19
            + f9_2 * g5_19;
        let h5 = f0 * g5
            + f1 * g4
            + f2 * g3
            + f3 * g2
            + f4 * g1
            + f5 * g0
            + f6 * g9_19
            + f7 * g8_19
            + f8 * g7_19
            + f9 * g6_19;
        let h6 = f0 * g6
            + f1_2 * g5
            + f2 * g4
            + f3_2 * g3
            + f4 * g2
            + f5_2 * g1
            + f6 * g0
            + f7_2 * g9_19
            + f8 * g8_19
            + f9_2 * g7_19;
        let h7 = f0 * g7
            + f1 * g6
            + f2 * g5
            + f3 * g4
            + f4 * g3
            + f5 * g2
            + f6 * g1
            + f7 * g0
            + f8 * g9_19
            + f9 * g8_19;
        let h8 = f0 * g8
            + f1_2 * g7
            + f2 * g6
            + f3_2 * g5
            + f4 * g4
            + f5_2 * g3
            + f6 * g2
            + f7_2 * g1
            + f8 * g0
            + f9_2 * g9_19;
        let h9 = f0 * g9
            + f1 * g8
            + f2 * g7
            + f3 * g6
            + f4 * g5
            + f5 * g4
            + f6 * g3
            + f7 * g2
            + f8 * g1
            + f9 * g0;
        reduce(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9)
    }

    /// The square: the products of [`Fe::mul`] with each pair f_i·f_j (i ≠ j) counted once,
    /// doubled.
    pub(crate) fn square(&self) -> Fe {
        let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9] = self.square_columns();
        reduce(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9)
    }

    /// 2·self², for the doubling formula; self must be reduced (the doubled columns count as
    /// m·n = 2).
    pub(crate) fn square2(&self) -> Fe {
        let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9] = self.square_columns().map(|h| 2 * h);
        reduce(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9)
    }

    #[inline(always)]
    fn square_columns(&self) -> [i64; 10] {
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);
        let (f0_2, f1_2, f2_2, f3_2, f4_2) = (2 * f0, 2 * f1, 2 * f2, 2 * f3, 2 * f4);
        let (f5_2, f6_2, f7_2, f8_2, f9_2) = (2 * f5, 2 * f6, 2 * f7, 2 * f8, 2 * f9);
        let (f1_4, f3_4, f5_4, f7_4) = (4 * f1, 4 * f3, 4 * f5, 4 * f7);
        let (f5_19, f6_19, f7_19, f8_19, f9_19) = (19 * f5, 19 * f6, 19 * f7, 19 * f8, 19 * f9);
        let h0 = f0 * f0 + f1_4 * f9_19 + f2_2 * f8_19 + f3_4 * f7_19 + f4_2 * f6_19 + f5_2 * f5_19;
        let h1 = f0_2 * f1 + f2_2 * f9_19 + f3_2 * f8_19 + f4_2 * f7_19 + f5_2 * f6_19;
        let h2 = f0_2 * f2 + f1_2 * f1 + f3_4 * f9_19 + f4_2 * f8_19 + f5_4 * f7_19 + f6 * f6_19;
        let h3 = f0_2 * f3 + f1_2 * f2 + f4_2 * f9_19 + f5_2 * f8_19 + f6_2 * f7_19;
        let h4 = f0_2 * f4 + f1_4 * f3 + f2 * f2 + f5_4 * f9_19 + f6_2 * f8_19 + f7_2 * f7_19;
        let h5 = f0_2 * f5 + f1_2 * f4 + f2_2 * f3 + f6_2 * f9_19 + f7_2 * f8_19;
        let h6 = f0_2 * f6 + f1_4 * f5 + f2_2 * f4 + f3_2 * f3 + f7_4 * f9_19 + f8 * f8_19;
        let h7 = f0_2 * f7 + f1_2 * f6 + f2_2 * f5 + f3_2 * f4 + f8_2 * f9_19;
        let h8 = f0_2 * f8 + f1_4 * f7 + f2_2 * f6 + f3_4 * f5 + f4 * f4 + f9_2 * f9_19;
        let h9 = f0_2 * f9 + f1_2 * f8 + f2_2 * f7 + f3_2 * f6 + f4_2 * f5;
        [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9]
    }

    fn square_times(&self, n: u32) -> Fe {
        let mut x = *self;
        for _ in 0..n {
            x = x.square();
        }
        x
    }

    /// (self^(2^250 − 1), self^11): the common start of the inversion and of the square root.
    fn pow_2_250_minus_1(&self) -> (Fe, Fe) {
        let z2 = self.square();
        let z9 = z2.square_times(2).mul(self);
        let z11 = z9.mul(&z2);
        let z_5_0 = z11.square().mul(&z9); // z^(2^5 − 1)
        let z_10_0 = z_5_0.square_times(5).mul(&z_5_0);
        let z_20_0 = z_10_0.square_times(10).mul(&z_10_0);
        let z_40_0 = z_20_0.square_times(20).mul(&z_20_0);
        let z_50_0 = z_40_0.square_times(10).mul(&z_10_0);
        let z_100_0 = z_50_0.square_times(50).mul(&z_50_0);
        let z_200_0 = z_100_0.square_times(100).mul(&z_100_0);
        let z_250_0 = z_200_0.square_times(50).mul(&z_50_0);
        (z_250_0, z11)
    }

    /// self^(p − 2) = self⁻¹ (0 for 0): 254 squarings and 11 products.
    pub(crate) fn invert(&self) -> Fe {
        let (z_250_0, z11) = self.pow_2_250_minus_1();
        // 2^255 − 32 + 11 = p − 2.
        z_250_0.square_times(5).mul(&z11)
    }

    /// self^((p − 5)/8) = self^(2^252 − 3), the exponent of the square root.
    fn pow_p58(&self) -> Fe {
        let (z_250_0, _) = self.pow_2_250_minus_1();
        z_250_0.square_times(2).mul(self)
    }

    /// The canonical encoding: the value reduced into [0, p), 32 bytes little-endian (the top
    /// bit clear).
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        // 4p, limb by limb, makes every limb positive without changing the value mod p (limbs
        // up to 3.9 times a reduced limb in magnitude; this module encodes reduced elements and
        // sums of two).
        let mut h = [0i64; 10];
        for (i, (o, &v)) in h.iter_mut().zip(self.0.iter()).enumerate() {
            let limb_of_p = (1i64 << width(i)) - if i == 0 { 19 } else { 1 };
            *o = i64::from(v) + 4 * limb_of_p;
        }
        // Two passes of carries: after them every limb fits its width and the value is below
        // 2^255.
        carry_pass(&mut h, true);
        carry_pass(&mut h, true);
        // The value v is in [0, 2^255); v ≥ p exactly when v + 19 carries out of bit 255, and
        // then v − p is v + 19 without that bit.
        let mut q = 19;
        for (i, &limb) in h.iter().enumerate() {
            q = (limb + q) >> width(i);
        }
        if let Some(h0) = h.first_mut() {
            *h0 += 19 * q;
        }
        carry_pass(&mut h, false);
        // Pack the 255 bits.
        let mut out = [0u8; 32];
        let mut acc = 0u64;
        let mut bits = 0u32;
        let mut at = 0;
        for (i, &limb) in h.iter().enumerate() {
            acc |= (limb as u64) << bits;
            bits += width(i);
            while bits >= 8 {
                if let Some(o) = out.get_mut(at) {
                    *o = acc as u8;
                }
                at += 1;
                acc >>= 8;
                bits -= 8;
            }
        }
        if let Some(o) = out.get_mut(at) {
            *o = acc as u8;
        }
        out
    }

    /// The low 255 bits of `bytes`, little-endian (the top bit, a sign in point encodings, is
    /// ignored). The value may be ≥ p; callers that need a canonical input check it.
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Fe {
        let mut limbs = [0i32; 10];
        let mut acc = 0u64;
        let mut bits = 0u32;
        let mut next = bytes.iter();
        for (i, limb) in limbs.iter_mut().enumerate() {
            while bits < width(i) {
                let byte = next.next().copied().unwrap_or(0);
                acc |= u64::from(byte) << bits;
                bits += 8;
            }
            *limb = (acc & ((1 << width(i)) - 1)) as i32;
            acc >>= width(i);
            bits -= width(i);
        }
        Fe(limbs)
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.to_bytes() == [0; 32]
    }

    /// Whether the canonical value is odd: the "negative" x of a point encoding.
    pub(crate) fn is_negative(&self) -> bool {
        self.to_bytes()[0] & 1 == 1
    }

    pub(crate) fn equals(&self, o: &Fe) -> bool {
        self.to_bytes() == o.to_bytes()
    }
}

/// One pass of carries up the limbs; the carry out of the top is folded back into limb 0 as 19
/// (2^255 ≡ 19) when `fold`, dropped otherwise.
fn carry_pass(h: &mut [i64; 10], fold: bool) {
    let mut c = 0;
    for (i, limb) in h.iter_mut().enumerate() {
        *limb += c;
        c = *limb >> width(i);
        *limb &= (1 << width(i)) - 1;
    }
    if fold {
        if let Some(h0) = h.first_mut() {
            *h0 += 19 * c;
        }
    }
}

/// The curve's constants, computed once per VM from their definitions.
struct Constants {
    /// d = −121665/121666.
    d: Fe,
    /// 2·d.
    d2: Fe,
    /// A square root of −1: 2^((p − 1)/4).
    sqrt_m1: Fe,
}

fn constants() -> &'static Constants {
    static CONSTANTS: OnceLock<Constants> = OnceLock::new();
    CONSTANTS.get_or_init(|| {
        let d = Fe::small(-121_665).mul(&Fe::small(121_666).invert());
        // (p − 1)/4 = 2^253 − 5 = 8·(2^250 − 1) + 3.
        let two = Fe::small(2);
        let (two_250_0, _) = two.pow_2_250_minus_1();
        let sqrt_m1 = two_250_0.square_times(3).mul(&Fe::small(8));
        Constants {
            d,
            d2: d.add(&d).carry(),
            sqrt_m1,
        }
    })
}

/// A point in extended coordinates: x = X/Z, y = Y/Z, x·y = T/Z.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// A point with Z = 1 in the form additions use: y + x, y − x and 2d·x·y, all reduced.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Affine {
    ypx: Fe,
    ymx: Fe,
    xy2d: Fe,
}

impl Point {
    pub(crate) const IDENTITY: Point = Point {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        t: Fe::ZERO,
    };

    /// Decodes a point (RFC 8032 §5.1.3): `None` when y is not canonical, when no x exists,
    /// or for x = 0 with the sign bit set.
    pub(crate) fn decompress(bytes: &[u8; 32]) -> Option<Point> {
        let c = constants();
        let sign = bytes.last().is_some_and(|b| b >> 7 == 1);
        let y = Fe::from_bytes(bytes);
        let mut canonical = *bytes;
        if let Some(top) = canonical.last_mut() {
            *top &= 0x7f;
        }
        if y.to_bytes() != canonical {
            return None;
        }
        let y2 = y.square();
        let u = y2.sub(&Fe::ONE); // m = 2
        let v = y2.mul(&c.d).add(&Fe::ONE); // m = 2
                                            // x = u·v³·(u·v⁷)^((p − 5)/8), a square root of u/v when one exists.
        let v3 = v.square().mul(&v);
        let v7 = v3.square().mul(&v);
        let mut x = u.mul(&v3).mul(&u.mul(&v7).pow_p58());
        let vx2 = v.mul(&x.square());
        if !vx2.equals(&u) {
            if vx2.equals(&u.neg()) {
                x = x.mul(&c.sqrt_m1);
            } else {
                return None;
            }
        }
        if x.is_zero() && sign {
            return None;
        }
        if x.is_negative() != sign {
            x = x.neg().carry();
        }
        Some(Point {
            x,
            y,
            z: Fe::ONE,
            t: x.mul(&y),
        })
    }

    /// The encoding: y with the sign of x in the top bit (one inversion).
    pub(crate) fn compress(&self) -> [u8; 32] {
        let z_inv = self.z.invert();
        let x = self.x.mul(&z_inv);
        let y = self.y.mul(&z_inv);
        let mut out = y.to_bytes();
        if let Some(top) = out.last_mut() {
            *top |= u8::from(x.is_negative()) << 7;
        }
        out
    }

    /// 2·self (dbl-2008-hwcd with a = −1): 4 squarings, 4 products.
    pub(crate) fn double(&self) -> Point {
        let a = self.x.square();
        let b = self.y.square();
        let c = self.z.square2();
        let e = self.x.add(&self.y).square().sub(&a).sub(&b); // m = 3
        let g = b.sub(&a); // m = 2
        let f = g.sub(&c); // m = 3
        let h = a.add(&b).neg(); // m = 2
        Point {
            x: e.mul(&f),
            y: g.mul(&h),
            t: e.mul(&h),
            z: f.mul(&g),
        }
    }

    /// self + q, or self − q when `negate` (madd-2008-hwcd-3 with Z2 = 1): 7 products.
    pub(crate) fn add_affine(&self, q: &Affine, negate: bool) -> Point {
        // −q swaps y + x and y − x and negates 2d·x·y.
        let (q_plus, q_minus) = if negate {
            (&q.ymx, &q.ypx)
        } else {
            (&q.ypx, &q.ymx)
        };
        let a = self.y.sub(&self.x).mul(q_minus); // m = 2, 1
        let b = self.y.add(&self.x).mul(q_plus); // m = 2, 1
        let c = self.t.mul(&q.xy2d);
        let d = self.z.add(&self.z); // m = 2
        let (f, g) = if negate {
            (d.add(&c), d.sub(&c))
        } else {
            (d.sub(&c), d.add(&c))
        }; // m = 3
        let e = b.sub(&a); // m = 2
        let h = b.add(&a); // m = 2
        Point {
            x: e.mul(&f),
            y: g.mul(&h),
            t: e.mul(&h),
            z: f.mul(&g),
        }
    }

    /// self + q for two projective points (add-2008-hwcd-3): table building only.
    fn add(&self, q: &Point) -> Point {
        let a = self.y.sub(&self.x).mul(&q.y.sub(&q.x)); // m = 2, 2
        let b = self.y.add(&self.x).mul(&q.y.add(&q.x)); // m = 2, 2
        let c = self.t.mul(&q.t).mul(&constants().d2);
        let zz = self.z.mul(&q.z);
        let d = zz.add(&zz); // m = 2
        let e = b.sub(&a);
        let f = d.sub(&c); // m = 3
        let g = d.add(&c); // m = 3
        let h = b.add(&a);
        Point {
            x: e.mul(&f),
            y: g.mul(&h),
            t: e.mul(&h),
            z: f.mul(&g),
        }
    }
}

/// Affine forms of many points with one inversion (Montgomery's trick).
fn batch_affine(points: &[Point]) -> Vec<Affine> {
    // prefix[i] = z_0·…·z_(i−1)
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    let d2 = constants().d2;
    let mut out = vec![
        Affine {
            ypx: Fe::ONE,
            ymx: Fe::ONE,
            xy2d: Fe::ZERO,
        };
        points.len()
    ];
    for ((p, before), slot) in points.iter().zip(&prefix).zip(out.iter_mut()).rev() {
        // inv = (z_0·…·z_i)⁻¹ here.
        let z_inv = inv.mul(before);
        inv = inv.mul(&p.z);
        let x = p.x.mul(&z_inv);
        let y = p.y.mul(&z_inv);
        *slot = Affine {
            ypx: y.add(&x).carry(),
            ymx: y.sub(&x).carry(),
            xy2d: x.mul(&y).mul(&d2),
        };
    }
    out
}

/// Scalars (below 2^253) are cut into this many pieces of `PIECE_BITS` bits: the doublings
/// are shared by all pieces, so there are `PIECE_BITS` of them, for tables `PIECES` times as
/// large as one point's.
const PIECES: usize = 8;
const PIECE_BITS: usize = 32;

/// Tables of odd multiples for one point P: `tables[j][i] = (2i + 1)·2^(32j)·P`.
pub(crate) struct Tables<const K: usize>([[Affine; K]; PIECES]);

impl<const K: usize> Tables<K> {
    pub(crate) fn build(p: &Point) -> Box<Tables<K>> {
        let mut points = Vec::with_capacity(PIECES * K);
        let mut base = *p;
        for _ in 0..PIECES {
            let twice = base.double();
            let mut m = base;
            for _ in 0..K {
                points.push(m);
                m = m.add(&twice);
            }
            for _ in 0..PIECE_BITS {
                base = base.double();
            }
        }
        let affine = batch_affine(&points);
        let mut tables = Box::new(Tables(
            [[Affine {
                ypx: Fe::ONE,
                ymx: Fe::ONE,
                xy2d: Fe::ZERO,
            }; K]; PIECES],
        ));
        for (slot, a) in tables.0.iter_mut().flatten().zip(affine) {
            *slot = a;
        }
        tables
    }

    /// The entry for an odd NAF digit, and whether to subtract it.
    fn entry(&self, piece: usize, digit: i8) -> Option<(&Affine, bool)> {
        let index = usize::from(digit.unsigned_abs() / 2);
        Some((self.0.get(piece)?.get(index)?, digit < 0))
    }
}

/// NAF window of B's tables: digits up to ±63, 32 points per piece.
pub(crate) const W_B: u32 = 7;
pub(crate) const B_TABLE: usize = 1 << (W_B - 2);
/// NAF window of a key's tables: digits up to ±15, 8 points per piece.
pub(crate) const W_A: u32 = 5;
pub(crate) const A_TABLE: usize = 1 << (W_A - 2);

/// The base point's tables, built on first use.
fn base_tables() -> &'static Tables<B_TABLE> {
    static TABLES: OnceLock<Box<Tables<B_TABLE>>> = OnceLock::new();
    TABLES.get_or_init(|| {
        // B = (x, 4/5) with x even: the encoding 0x58, then 0x66 × 31.
        let mut encoded = [0x66u8; 32];
        encoded[0] = 0x58;
        let b = Point::decompress(&encoded).unwrap_or(Point::IDENTITY);
        Tables::build(&b)
    })
}

/// The width-w NAF of a scalar below 2^253, one digit per bit position: every nonzero digit is
/// odd and below 2^(w−1) in magnitude, and Σ digit_i·2^i is the scalar. Positions stay below
/// 254, so every digit falls into one of the pieces.
pub(crate) fn naf(scalar: &[u8; 32], w: u32) -> [i8; 256] {
    let mut limbs = [0u64; 5];
    for (limb, chunk) in limbs.iter_mut().zip(scalar.chunks(8)) {
        *limb = chunk
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    }
    let width = 1u64 << w;
    let mask = width - 1;
    let mut out = [0i8; 256];
    let mut carry = 0u64;
    let mut pos = 0usize;
    while pos < 256 {
        let (index, bit) = (pos / 64, pos % 64);
        let low = limbs.get(index).copied().unwrap_or(0) >> bit;
        let high = if bit == 0 {
            0
        } else {
            limbs.get(index + 1).copied().unwrap_or(0) << (64 - bit)
        };
        let window = carry + ((low | high) & mask);
        if window & 1 == 0 {
            pos += 1;
            continue;
        }
        if let Some(o) = out.get_mut(pos) {
            if window < width / 2 {
                carry = 0;
                *o = window as i8;
            } else {
                carry = 1;
                *o = (window as i64 - width as i64) as i8;
            }
        }
        pos += w as usize;
    }
    out
}

/// [s]B − [k]A, with A given by its tables; s and k below 2^253.
pub(crate) fn double_scalar_mul_base(
    s: &[u8; 32],
    k: &[u8; 32],
    a_tables: &Tables<A_TABLE>,
) -> Point {
    let b_tables = base_tables();
    let s_naf = naf(s, W_B);
    let k_naf = naf(k, W_A);
    let mut acc = Point::IDENTITY;
    let mut started = false;
    for bit in (0..PIECE_BITS).rev() {
        if started {
            acc = acc.double();
        }
        for piece in 0..PIECES {
            let at = PIECE_BITS * piece + bit;
            let ds = s_naf.get(at).copied().unwrap_or(0);
            if ds != 0 {
                if let Some((q, negate)) = b_tables.entry(piece, ds) {
                    acc = acc.add_affine(q, negate);
                    started = true;
                }
            }
            let dk = k_naf.get(at).copied().unwrap_or(0);
            if dk != 0 {
                if let Some((q, negate)) = a_tables.entry(piece, dk) {
                    // −[k]A: the digit's sign flipped.
                    acc = acc.add_affine(q, !negate);
                    started = true;
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::limbs_le;
    use crate::rsa::{less_than as limbs_less_than, mont_mul, neg_inv, r_squared, sub_assign};
    use crate::testutil::random_bytes;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;

    /// p as eight 32-bit limbs.
    fn p_limbs() -> Vec<u32> {
        let mut p = vec![0xffff_ffffu32; 8];
        p[0] = 0xffff_ffed;
        p[7] = 0x7fff_ffff;
        p
    }

    fn le_bytes(limbs: &[u32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, l) in out.chunks_mut(4).zip(limbs) {
            chunk.copy_from_slice(&l.to_le_bytes());
        }
        out
    }

    /// The value of a limb vector mod p, by schoolbook big integers: Σ (limb_i + 16·p_i)·2^off_i
    /// (every term positive for limbs up to 15 times their width), then p subtracted while the
    /// value is at least p.
    fn reference_value(f: &Fe) -> [u8; 32] {
        let mut acc = vec![0u32; 9];
        let mut offset = 0u32;
        for (i, &limb) in f.0.iter().enumerate() {
            let limb_of_p = (1i64 << width(i)) - if i == 0 { 19 } else { 1 };
            let v = u64::try_from(i64::from(limb) + 16 * limb_of_p).unwrap();
            assert!(v < 1 << 40);
            // Add v·2^offset.
            let wide = u128::from(v) << (offset % 32);
            let mut carry = 0u128;
            for (k, a) in acc.iter_mut().enumerate().skip((offset / 32) as usize) {
                let shift = 32 * (k - (offset / 32) as usize);
                let add = if shift < 128 {
                    (wide >> shift) & 0xffff_ffff
                } else {
                    0
                };
                let s = u128::from(*a) + add + carry;
                *a = s as u32;
                carry = s >> 32;
            }
            offset += width(i);
        }
        let mut p9 = p_limbs();
        p9.push(0);
        while !limbs_less_than(&acc, &p9) {
            sub_assign(&mut acc, &p9);
        }
        le_bytes(&acc[..8])
    }

    /// a·b mod p by the RSA module's Montgomery arithmetic: (a·b·R⁻¹)·R²·R⁻¹.
    fn reference_mul(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let p = p_limbs();
        let p0 = neg_inv(p[0]);
        let r2 = r_squared(&p, p0, 255).unwrap();
        let mut t = vec![0u32; 8];
        mont_mul(&mut t, &limbs_le(a), &limbs_le(b), &p, p0);
        let mut out = vec![0u32; 8];
        mont_mul(&mut out, &t, &r2, &p, p0);
        le_bytes(&out)
    }

    /// A field element with limbs anywhere up to `m` times a reduced limb, either sign.
    fn random_fe(m: i64) -> Fe {
        let r: [u8; 40] = random_bytes();
        let mut limbs = [0i32; 10];
        for (i, (l, c)) in limbs.iter_mut().zip(r.chunks(4)).enumerate() {
            let raw = i64::from(u32::from_le_bytes(c.try_into().unwrap()));
            let bound = m << width(i);
            *l = (raw % (2 * bound + 1) - bound) as i32;
        }
        Fe(limbs)
    }

    /// Elements at the edges: every limb at +/− m times its largest reduced value.
    fn edge_fes(m: i64) -> Vec<Fe> {
        let top = |sign: i64| {
            let mut limbs = [0i32; 10];
            for (i, l) in limbs.iter_mut().enumerate() {
                *l = (sign * m * ((1i64 << width(i)) - 1)) as i32;
            }
            Fe(limbs)
        };
        vec![top(1), top(-1), Fe::ZERO, Fe::ONE, Fe::ONE.neg()]
    }

    #[test]
    fn encoding_is_the_value_mod_p() {
        let p_bytes = le_bytes(&p_limbs());
        assert_eq!(Fe::from_bytes(&p_bytes).to_bytes(), [0u8; 32]);
        let mut p_minus_1 = p_bytes;
        p_minus_1[0] -= 1;
        assert_eq!(Fe::from_bytes(&p_minus_1).to_bytes(), p_minus_1);
        assert_eq!(Fe::ONE.neg().to_bytes(), p_minus_1);
        // 2^255 − 1 (the top bit is ignored) is p + 18.
        let mut eighteen = [0u8; 32];
        eighteen[0] = 18;
        assert_eq!(Fe::from_bytes(&[0xff; 32]).to_bytes(), eighteen);
        for m in 1..=3 {
            for f in edge_fes(m) {
                assert_eq!(f.to_bytes(), reference_value(&f), "{f:?}");
            }
            for _ in 0..300 {
                let f = random_fe(m);
                assert_eq!(f.to_bytes(), reference_value(&f), "{f:?}");
            }
        }
        for _ in 0..300 {
            let mut b: [u8; 32] = random_bytes();
            b[31] &= 0x7f;
            let f = Fe::from_bytes(&b);
            assert_eq!(Fe::from_bytes(&f.to_bytes()).to_bytes(), f.to_bytes());
            assert_eq!(f.to_bytes(), reference_value(&f));
        }
    }

    #[test]
    fn products_match_the_reference_within_the_bounds() {
        // Operand pairs as the formulas use them: m·n up to 9 (3·3), and 2·4, 1·12 past it
        // up to the documented limit of 14.
        let pairs = [
            (1, 1),
            (2, 1),
            (2, 2),
            (3, 1),
            (3, 2),
            (3, 3),
            (4, 2),
            (12, 1),
        ];
        for (m, n) in pairs {
            let mut cases: Vec<(Fe, Fe)> = Vec::new();
            for a in edge_fes(m) {
                for b in edge_fes(n) {
                    cases.push((a, b));
                }
            }
            for _ in 0..300 {
                cases.push((random_fe(m), random_fe(n)));
            }
            for (a, b) in cases {
                let (av, bv) = (reference_value(&a), reference_value(&b));
                let want = reference_mul(&av, &bv);
                assert_eq!(a.mul(&b).to_bytes(), want, "{m}·{n}: {a:?} {b:?}");
                assert_eq!(reference_value(&a.mul(&b)), want);
                if m == n {
                    let sq = reference_mul(&av, &av);
                    assert_eq!(a.square().to_bytes(), sq, "square {a:?}");
                    let sq2 = reference_mul(&sq, &Fe::small(2).to_bytes());
                    if m == 1 {
                        assert_eq!(a.square2().to_bytes(), sq2, "square2 {a:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn inversion_and_constants() {
        for _ in 0..50 {
            let a = random_fe(1);
            if a.is_zero() {
                continue;
            }
            assert!(a.mul(&a.invert()).equals(&Fe::ONE));
        }
        assert!(Fe::ZERO.invert().is_zero());
        let c = constants();
        assert!(c.sqrt_m1.square().equals(&Fe::ONE.neg()));
        assert!(c.d.mul(&Fe::small(121_666)).equals(&Fe::small(-121_665)));
        assert!(c.d2.equals(&c.d.add(&c.d)));
    }

    #[test]
    fn decoding_and_encoding_agree_with_curve25519_dalek() {
        let mut candidates: Vec<[u8; 32]> = (0..200).map(|_| random_bytes()).collect();
        let mut p = ED25519_BASEPOINT_POINT;
        for _ in 0..50 {
            candidates.push(p.compress().to_bytes());
            p += ED25519_BASEPOINT_POINT;
        }
        for t in curve25519_dalek::constants::EIGHT_TORSION {
            candidates.push(t.compress().to_bytes());
        }
        let mut decoded = 0;
        for bytes in candidates {
            let theirs = CompressedEdwardsY(bytes)
                .decompress()
                .filter(|q| q.compress().to_bytes() == bytes);
            let ours = Point::decompress(&bytes);
            assert_eq!(ours.is_some(), theirs.is_some(), "{bytes:?}");
            if let Some(q) = ours {
                decoded += 1;
                assert_eq!(q.compress(), bytes);
                // Doubling, and the same point through the general addition.
                let twice = theirs.unwrap() + theirs.unwrap();
                assert_eq!(q.double().compress(), twice.compress().to_bytes());
                assert_eq!(q.add(&q).compress(), twice.compress().to_bytes());
            }
        }
        assert!(decoded >= 58);
        let base = ED25519_BASEPOINT_POINT.compress().to_bytes();
        let mut expected = [0x66u8; 32];
        expected[0] = 0x58;
        assert_eq!(base, expected);
    }

    #[test]
    fn naf_digits_sum_to_the_scalar() {
        let mut scalars: Vec<[u8; 32]> = (0..200)
            .map(|_| Scalar::from_bytes_mod_order(random_bytes()).to_bytes())
            .collect();
        scalars.push([0; 32]);
        scalars.push((Scalar::ZERO - Scalar::ONE).to_bytes());
        for w in [W_A, W_B] {
            for s in &scalars {
                let digits = naf(s, w);
                let mut sum = Scalar::ZERO;
                let mut power = Scalar::ONE;
                let mut last: Option<usize> = None;
                for (i, &d) in digits.iter().enumerate() {
                    if d != 0 {
                        assert!(d % 2 != 0 && i32::from(d).abs() < 1 << (w - 1), "{d}");
                        assert!(i < 254);
                        if let Some(l) = last {
                            assert!(i - l >= w as usize, "digits at {l} and {i}");
                        }
                        last = Some(i);
                        let v = Scalar::from(u64::from(d.unsigned_abs()));
                        sum = if d > 0 {
                            sum + v * power
                        } else {
                            sum - v * power
                        };
                    }
                    power = power + power;
                }
                assert_eq!(sum.to_bytes(), *s);
            }
        }
    }

    #[test]
    fn double_scalar_multiplication_agrees_with_curve25519_dalek() {
        let b = ED25519_BASEPOINT_POINT;
        let mut cases: Vec<(Scalar, Scalar, Scalar)> = (0..40)
            .map(|_| {
                (
                    Scalar::from_bytes_mod_order(random_bytes()),
                    Scalar::from_bytes_mod_order(random_bytes()),
                    Scalar::from_bytes_mod_order(random_bytes()),
                )
            })
            .collect();
        let minus_one = Scalar::ZERO - Scalar::ONE;
        cases.push((Scalar::ZERO, Scalar::ZERO, Scalar::ONE));
        cases.push((minus_one, minus_one, minus_one));
        cases.push((Scalar::ONE, Scalar::ZERO, Scalar::from(5u64)));
        cases.push((Scalar::ZERO, Scalar::ONE, Scalar::from(5u64)));
        // s·B = k·A: the sum is the identity.
        cases.push((Scalar::from(35u64), Scalar::from(7u64), Scalar::from(5u64)));
        for (s, k, a) in cases {
            let a_point = b * a;
            let ours_a = Point::decompress(&a_point.compress().to_bytes()).unwrap();
            let tables = Tables::<A_TABLE>::build(&ours_a);
            let ours = double_scalar_mul_base(&s.to_bytes(), &k.to_bytes(), &tables);
            let theirs = b * s - a_point * k;
            assert_eq!(ours.compress(), theirs.compress().to_bytes());
        }
    }
}
