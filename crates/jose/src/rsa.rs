//! RSA signature verification (RS256/384/512 and PS256/384/512) on a public key prepared once.
//!
//! Why not ring: ring 0.17 has no pre-parsed RSA public key, so every verification rebuilt the
//! modulus and computed R² mod n again, and on wasm32 its portable arithmetic is slow. Here the
//! key is turned into a [`PublicKey`] when the JWKS is imported: modulus limbs, the Montgomery
//! constant −n⁻¹ mod 2³² and R² mod n are computed once, and a verification only runs the public
//! operation s^e mod n and checks the encoding.
//!
//! Arithmetic: 32-bit limbs with 64-bit products. wasm32 multiplies 64-bit integers natively but
//! has no instruction for the high half of a 64×64-bit product, so 64-bit limbs would need a
//! slow 128-bit multiply; 32-bit limbs keep every product a single native multiply. The
//! exponentiation is left-to-right square-and-multiply in the Montgomery domain; it runs in
//! variable time, which is fine because everything a verification handles is public (key,
//! message and signature).
//!
//! Checks, as RFC 8017 and ring have them: the signature is exactly as long as the modulus in
//! bytes, 0 < s < n; PKCS#1 v1.5 builds the whole expected encoding (DigestInfo with the NULL
//! parameter) and compares it to the decrypted block, never parsing that block; PSS follows
//! EMSA-PSS-VERIFY with MGF1 over the same hash and a salt exactly as long as the hash.

use crate::digest;

/// The hash of a JWS RSA algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn algorithm(self) -> digest::Algorithm {
        match self {
            Hash::Sha256 => digest::Algorithm::Sha256,
            Hash::Sha384 => digest::Algorithm::Sha384,
            Hash::Sha512 => digest::Algorithm::Sha512,
        }
    }

    /// DER of `DigestInfo` up to the digest itself (algorithm identifier with the NULL
    /// parameter, then the OCTET STRING header), RFC 8017 §9.2 note 1.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The signature encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    /// RSASSA-PKCS1-v1_5 (RS*).
    Pkcs1,
    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash (PS*).
    Pss,
}

/// An RSA public key ready for verification. Built once per imported key; verifying allocates
/// only a few limb buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    /// The modulus, least significant limb first; the top limb is not zero.
    n: Vec<u32>,
    /// −n⁻¹ mod 2³², for Montgomery reduction.
    n0_inv: u32,
    /// R² mod n, with R = 2^(32·limbs): converts into the Montgomery domain.
    rr: Vec<u32>,
    /// The public exponent: odd and at least 3.
    e: u64,
    /// Bit length of the modulus.
    bits: usize,
    /// Byte length of the modulus, which is also the signature length.
    k: usize,
}

impl PublicKey {
    /// Prepares a key from big-endian modulus and exponent. Refuses what the arithmetic cannot
    /// take (an even modulus or one below 3, an even exponent, one below 3 or above 64 bits);
    /// size and policy rules are the importer's.
    pub(crate) fn new(n_be: &[u8], e_be: &[u8]) -> Option<PublicKey> {
        let n_be = strip_zeros(n_be);
        let e_be = strip_zeros(e_be);
        if n_be.is_empty() || e_be.len() > 8 {
            return None;
        }
        let e = e_be.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if e < 3 || e & 1 == 0 {
            return None;
        }
        let k = n_be.len();
        let n = limbs_from_be(n_be, k.div_ceil(4))?;
        let low = *n.first()?;
        let top = *n.last()?;
        if low & 1 == 0 || (n.len() == 1 && low < 3) {
            return None;
        }
        let bits = 32 * n.len() - top.leading_zeros() as usize;
        let n0_inv = neg_inv(low);
        let rr = r_squared(&n, n0_inv, bits)?;
        Some(PublicKey {
            n,
            n0_inv,
            rr,
            e,
            bits,
            k,
        })
    }

    /// Verifies `signature` over `message` with the given encoding and hash.
    pub(crate) fn verify(
        &self,
        padding: Padding,
        hash: Hash,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let Some(em) = self.public_op(signature) else {
            return false;
        };
        let m_hash = digest::digest(hash.algorithm(), message);
        match padding {
            Padding::Pkcs1 => pkcs1_matches(&em, hash, m_hash.as_ref()),
            Padding::Pss => pss_matches(&em, self.bits - 1, hash, m_hash.as_ref()),
        }
    }

    /// RSAVP1 (RFC 8017 §5.2.2): s^e mod n as `k` big-endian bytes, for a signature of exactly
    /// `k` bytes whose value is in 1..n.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        let s = limbs_from_be(signature, self.n.len())?;
        if s.iter().all(|&l| l == 0) || !less_than(&s, &self.n) {
            return None;
        }
        let m = self.exp(&s);
        Some(limbs_to_be(&m, self.k))
    }

    /// s^e mod n for 0 < s < n.
    fn exp(&self, s: &[u32]) -> Vec<u32> {
        let (n, n0) = (self.n.as_slice(), self.n0_inv);
        let len = n.len();
        // s·R mod n: s in the Montgomery domain.
        let mut base = vec![0u32; len];
        mont_mul(&mut base, s, &self.rr, n, n0);
        let mut acc = base.clone();
        let mut tmp = vec![0u32; len];
        let top_bit = 63 - self.e.leading_zeros();
        // acc = s^(prefix of e)·R; bits from the one below the top down to bit 1.
        for i in (1..top_bit).rev() {
            mont_mul(&mut tmp, &acc, &acc, n, n0);
            std::mem::swap(&mut acc, &mut tmp);
            if (self.e >> i) & 1 == 1 {
                mont_mul(&mut tmp, &acc, &base, n, n0);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Bit 0 is set (e is odd): square, then multiply by s itself rather than s·R, which
        // also leaves the Montgomery domain: s^(e−1)·R · s · R⁻¹ = s^e.
        mont_mul(&mut tmp, &acc, &acc, n, n0);
        mont_mul(&mut acc, &tmp, s, n, n0);
        acc
    }
}

/// PKCS#1 v1.5: the decrypted block must be exactly `00 01 FF…FF 00 || DigestInfo || H(m)`, with
/// at least eight `FF` bytes (RFC 8017 §9.2).
fn pkcs1_matches(em: &[u8], hash: Hash, m_hash: &[u8]) -> bool {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + m_hash.len();
    let Some(ps_len) = em.len().checked_sub(t_len + 3) else {
        return false;
    };
    if ps_len < 8 {
        return false;
    }
    let expected = [0x00, 0x01]
        .iter()
        .chain(std::iter::repeat_n(&0xff, ps_len))
        .chain(&[0x00])
        .chain(prefix)
        .chain(m_hash);
    em.iter().eq(expected)
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over `hash` and a salt as long as the hash.
/// `block` is the public-operation output (`k` bytes); `em_bits` is the modulus bit length
/// minus one.
fn pss_matches(block: &[u8], em_bits: usize, hash: Hash, m_hash: &[u8]) -> bool {
    let h_len = m_hash.len();
    let s_len = h_len;
    let em_len = em_bits.div_ceil(8);
    // I2OSP(m, emLen): when emLen is one byte shorter than the modulus, the extra leading byte
    // must be zero.
    let Some(extra) = block.len().checked_sub(em_len) else {
        return false;
    };
    let Some((lead, em)) = block.split_at_checked(extra) else {
        return false;
    };
    if lead.iter().any(|&b| b != 0) {
        return false;
    }
    // Step 3.
    if em_len < h_len + s_len + 2 {
        return false;
    }
    // Step 4.
    let Some((&last, em)) = em.split_last() else {
        return false;
    };
    if last != 0xbc {
        return false;
    }
    // Step 5.
    let db_len = em_len - h_len - 1;
    let Some((masked_db, h)) = em.split_at_checked(db_len) else {
        return false;
    };
    // Step 6: the bits above em_bits must be zero.
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db.first().is_none_or(|&b| b & !top_mask != 0) {
        return false;
    }
    // Steps 7-9.
    let mut db = mgf1(hash, h, db_len);
    for (d, &m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // Step 10: zeros, then 01, then the salt.
    let ps_len = db_len - s_len - 1;
    let Some((ps, rest)) = db.split_at_checked(ps_len) else {
        return false;
    };
    let Some((&one, salt)) = rest.split_first() else {
        return false;
    };
    if ps.iter().any(|&b| b != 0) || one != 0x01 || salt.len() != s_len {
        return false;
    }
    // Steps 12-14.
    let mut ctx = digest::Context::new(hash.algorithm());
    ctx.update(&[0u8; 8]);
    ctx.update(m_hash);
    ctx.update(salt);
    ctx.finish().as_ref() == h
}

/// MGF1 (RFC 8017 B.2.1): `len` bytes from hashing `seed || counter`.
fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 0u32;
    while out.len() < len {
        let mut ctx = digest::Context::new(hash.algorithm());
        ctx.update(seed);
        ctx.update(&counter.to_be_bytes());
        out.extend_from_slice(ctx.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn strip_zeros(be: &[u8]) -> &[u8] {
    let first = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    be.get(first..).unwrap_or_default()
}

/// Big-endian bytes into `len` little-endian limbs; `None` if the value does not fit.
pub(crate) fn limbs_from_be(be: &[u8], len: usize) -> Option<Vec<u32>> {
    if be.len() > 4 * len {
        return None;
    }
    let mut limbs = vec![0u32; len];
    for (limb, chunk) in limbs.iter_mut().zip(be.rchunks(4)) {
        *limb = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    }
    Some(limbs)
}

/// The low `k` bytes of a limb vector, big-endian.
fn limbs_to_be(limbs: &[u32], k: usize) -> Vec<u8> {
    let mut out = vec![0u8; k];
    for (chunk, limb) in out.rchunks_mut(4).zip(limbs) {
        let bytes = limb.to_be_bytes();
        let skip = bytes.len() - chunk.len();
        for (o, b) in chunk.iter_mut().zip(bytes.iter().skip(skip)) {
            *o = *b;
        }
    }
    out
}

/// −x⁻¹ mod 2³² for odd x (Newton's iteration doubles the correct bits each step; x is its own
/// inverse modulo 8).
pub(crate) fn neg_inv(x: u32) -> u32 {
    let mut inv = x;
    for _ in 0..4 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// a < b, for equal lengths.
pub(crate) fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// a −= b, ignoring the final borrow (callers know a ≥ b, counting a carried top bit).
pub(crate) fn sub_assign(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(y))
            .wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
}

/// x = 2x mod n, for x < n.
fn double_mod(x: &mut [u32], n: &[u32]) {
    let mut carry = 0u32;
    for limb in x.iter_mut() {
        let next = *limb >> 31;
        *limb = (*limb << 1) | carry;
        carry = next;
    }
    if carry != 0 || !less_than(x, n) {
        sub_assign(x, n);
    }
}

/// R² mod n. Start from 2^(bits−1) (below n), double up to 2^j·R mod n, where 32·limbs = j·2^t
/// with j odd, then square t times in the Montgomery domain: each squaring of 2^a·R gives
/// 2^(2a)·R, ending at 2^(32·limbs)·R = R².
pub(crate) fn r_squared(n: &[u32], n0: u32, bits: usize) -> Option<Vec<u32>> {
    let len = n.len();
    let r_bits = 32 * len;
    let t = r_bits.trailing_zeros();
    let j = r_bits >> t;
    let mut x = vec![0u32; len];
    let top = x.get_mut((bits - 1) / 32)?;
    *top = 1 << ((bits - 1) % 32);
    for _ in 0..(r_bits + j - (bits - 1)) {
        double_mod(&mut x, n);
    }
    let mut tmp = vec![0u32; len];
    for _ in 0..t {
        mont_mul(&mut tmp, &x, &x, n, n0);
        std::mem::swap(&mut x, &mut tmp);
    }
    Some(x)
}

/// out = a·b·R⁻¹ mod n (Montgomery multiplication, operand scanning with the reduction
/// interleaved). a, b < n; every slice has n's length. The result is fully reduced.
///
/// One row per limb of `a`: add a_i·b and m·n in a single pass with two carry chains, m chosen
/// so the low limb becomes zero, and store each limb one place down (the division by 2³²).
/// Squarings use this too: a dedicated squaring (cross products once, then a separate
/// reduction) does fewer multiplications but touches memory more, and measured slower in V8;
/// so did unrolling this loop by hand, and running two rows per pass (faster natively, not in
/// V8). So did wasm SIMD (2026-12-01): 28-bit digits with the carries delayed to the end of each
/// column (product scanning), every column two dot products of four-digit `i64x2.extmul` steps,
/// took 112 µs per 2048-bit RS256 verification in V8 against 106 µs for this code (Node 22,
/// the same build settings): the narrower digits need a third more products, and the SIMD
/// multiply pays for little more than that. So did product scanning in 32-bit limbs (2026-12-05),
/// the low and high halves of each column's products summed in two 64-bit sums so that no product
/// waits for a carry: 18 products of 64 limbs in 135 µs in V8 (Node 22, `--no-liftoff`), 101 µs
/// with a squaring that computes each cross product once, against 97 µs for this code (natively
/// 102 and 98 against 88 µs).
pub(crate) fn mont_mul(out: &mut [u32], a: &[u32], b: &[u32], n: &[u32], n0: u32) {
    out.fill(0);
    let (Some((&b0, b_rest)), Some((&n_first, n_rest))) = (b.split_first(), n.split_first()) else {
        return;
    };
    // The limb above `out`: the running value stays below 2n, so it is 0 or 1.
    let mut top = 0u64;
    for &ai in a {
        let Some((t0, t_rest)) = out.split_first_mut() else {
            return;
        };
        let ai = u64::from(ai);
        let v = u64::from(*t0) + ai * u64::from(b0);
        let m = u64::from((v as u32).wrapping_mul(n0));
        // The low 32 bits of w are zero by the choice of m: the division by 2³² is the shift
        // of every limb down by one place.
        let w = u64::from(v as u32) + m * u64::from(n_first);
        let mut c1 = v >> 32;
        let mut c2 = w >> 32;
        let mut prev = t0;
        for ((tj, &bj), &nj) in t_rest.iter_mut().zip(b_rest).zip(n_rest) {
            let v = u64::from(*tj) + ai * u64::from(bj) + c1;
            c1 = v >> 32;
            let w = u64::from(v as u32) + m * u64::from(nj) + c2;
            c2 = w >> 32;
            *prev = w as u32;
            prev = tj;
        }
        let v = top + c1 + c2;
        *prev = v as u32;
        top = v >> 32;
    }
    if top != 0 || !less_than(out, n) {
        sub_assign(out, n);
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use ring::rand::SystemRandom;
    use ring::signature::{self as rsig, RsaKeyPair, RsaPublicKeyComponents};

    use super::*;
    use crate::jwk::{parse_jwks, JwksOptions, Key};
    use crate::jws::{b64url_encode, Alg};
    use crate::testutil::{hex, random_vec};
    use crate::verify::VerifyError;

    // Test keys made with `openssl genpkey -algorithm RSA` (PKCS#8 DER), for tests only: 2048
    // and 4096 bits with e = 65537, which ring signs with; 2048 bits with e = 3 and 2058 bits (a
    // modulus that is not a whole number of bytes), which ring will not sign with, so those come
    // with their modulus in hex and signatures made by openssl over `msg.txt` (PKCS#1 v1.5, and
    // PSS with MGF1 over the same hash and a salt as long as the hash).
    const RSA2048: &[u8] = include_bytes!("../tests/data/rsa/rsa2048.pk8");
    const RSA4096: &[u8] = include_bytes!("../tests/data/rsa/rsa4096.pk8");
    const MSG: &[u8] = include_bytes!("../tests/data/rsa/msg.txt");
    const E3_N_HEX: &str = include_str!("../tests/data/rsa/rsa2048_e3_n.hex");
    const E3_SIGS: [(Alg, &[u8]); 4] = [
        (
            Alg::RS256,
            include_bytes!("../tests/data/rsa/rsa2048_e3_rs256.sig"),
        ),
        (
            Alg::RS512,
            include_bytes!("../tests/data/rsa/rsa2048_e3_rs512.sig"),
        ),
        (
            Alg::PS256,
            include_bytes!("../tests/data/rsa/rsa2048_e3_ps256.sig"),
        ),
        (
            Alg::PS384,
            include_bytes!("../tests/data/rsa/rsa2048_e3_ps384.sig"),
        ),
    ];
    const N2058_HEX: &str = include_str!("../tests/data/rsa/rsa2058_n.hex");
    const SIGS_2058: [(Alg, &[u8]); 6] = [
        (
            Alg::RS256,
            include_bytes!("../tests/data/rsa/rsa2058_rs256.sig"),
        ),
        (
            Alg::RS384,
            include_bytes!("../tests/data/rsa/rsa2058_rs384.sig"),
        ),
        (
            Alg::RS512,
            include_bytes!("../tests/data/rsa/rsa2058_rs512.sig"),
        ),
        (
            Alg::PS256,
            include_bytes!("../tests/data/rsa/rsa2058_ps256.sig"),
        ),
        (
            Alg::PS384,
            include_bytes!("../tests/data/rsa/rsa2058_ps384.sig"),
        ),
        (
            Alg::PS512,
            include_bytes!("../tests/data/rsa/rsa2058_ps512.sig"),
        ),
    ];

    const OPTS: JwksOptions = JwksOptions {
        allow_symmetric: false,
        max_bytes: 1 << 20,
        max_keys: 4,
    };

    // ---- An independent reference: schoolbook products and bit-at-a-time reduction. ----

    fn random_limbs(len: usize) -> Vec<u32> {
        random_vec(4 * len)
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn ref_cmp(a: &[u32], b: &[u32]) -> Ordering {
        let len = a.len().max(b.len());
        for i in (0..len).rev() {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            if x != y {
                return x.cmp(&y);
            }
        }
        Ordering::Equal
    }

    fn ref_mul(a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut out = vec![0u32; a.len() + b.len()];
        for (i, &x) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &y) in b.iter().enumerate() {
                let t = out[i + j] as u64 + x as u64 * y as u64 + carry;
                out[i + j] = t as u32;
                carry = t >> 32;
            }
            out[i + b.len()] = carry as u32;
        }
        out
    }

    /// x mod n, as many limbs as n: shift x in one bit at a time, subtracting n when reached.
    fn ref_mod(x: &[u32], n: &[u32]) -> Vec<u32> {
        let mut r = vec![0u32; n.len() + 1];
        for i in (0..32 * x.len()).rev() {
            let bit = (x[i / 32] >> (i % 32)) & 1;
            let mut carry = bit;
            for limb in r.iter_mut() {
                let next = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            if ref_cmp(&r, n) != Ordering::Less {
                let mut borrow = 0i64;
                for (j, limb) in r.iter_mut().enumerate() {
                    let d = *limb as i64 - n.get(j).copied().unwrap_or(0) as i64 - borrow;
                    borrow = i64::from(d < 0);
                    *limb = d.rem_euclid(1 << 32) as u32;
                }
            }
        }
        r.truncate(n.len());
        r
    }

    fn ref_modexp(base: &[u32], mut e: u64, n: &[u32]) -> Vec<u32> {
        let mut result = ref_mod(&[1], n);
        let mut b = ref_mod(base, n);
        while e > 0 {
            if e & 1 == 1 {
                result = ref_mod(&ref_mul(&result, &b), n);
            }
            b = ref_mod(&ref_mul(&b, &b), n);
            e >>= 1;
        }
        result
    }

    /// x·2^(32·shift limbs).
    fn shifted(x: &[u32], limbs: usize) -> Vec<u32> {
        let mut v = vec![0u32; limbs];
        v.extend_from_slice(x);
        v
    }

    /// A random odd modulus of `bits` bits (top bit set), least significant limb first.
    fn random_modulus(bits: usize) -> Vec<u32> {
        let len = bits.div_ceil(32);
        let mut n = random_limbs(len);
        n[0] |= 1;
        let top_bits = bits - 32 * (len - 1);
        let last = n.last_mut().unwrap();
        *last &= u32::MAX >> (32 - top_bits);
        *last |= 1 << (top_bits - 1);
        n
    }

    fn to_be(limbs: &[u32]) -> Vec<u8> {
        limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect()
    }

    fn key_for(n: &[u32], e: u64) -> PublicKey {
        PublicKey::new(&to_be(n), &e.to_be_bytes()).unwrap()
    }

    // ---- Arithmetic against the reference. ----

    #[test]
    fn montgomery_constant() {
        for x in [1u32, 3, 0xffff_ffff, 0x8000_0001] {
            assert_eq!(x.wrapping_mul(neg_inv(x)), u32::MAX, "{x:#x}");
        }
        for _ in 0..1000 {
            let x = random_limbs(1)[0] | 1;
            assert_eq!(x.wrapping_mul(neg_inv(x)), u32::MAX, "{x:#x}");
        }
        // Not a tautology: an even number has no inverse and the check fails.
        assert_ne!(2u32.wrapping_mul(neg_inv(2)), u32::MAX);
    }

    #[test]
    fn limb_conversions() {
        for len in [1usize, 3, 4, 5, 255, 256, 257] {
            let bytes = random_vec(len);
            let limbs = limbs_from_be(&bytes, len.div_ceil(4)).unwrap();
            assert_eq!(limbs_to_be(&limbs, len), bytes);
            // The reference layout: least significant limb first.
            let mut padded = vec![0u8; 4 * limbs.len() - len];
            padded.extend_from_slice(&bytes);
            assert_eq!(to_be(&limbs), padded);
        }
        assert_eq!(limbs_from_be(&[1, 2, 3, 4, 5], 1), None);
        assert_eq!(
            limbs_from_be(&[1, 2, 3, 4, 5], 2),
            Some(vec![0x0203_0405, 1])
        );
    }

    #[test]
    fn montgomery_products_match_the_reference() {
        for bits in [2, 31, 32, 33, 64, 95, 544, 2048, 2058, 3072] {
            for round in 0..4 {
                let n = match round {
                    // All ones: the largest modulus of this many limbs when bits is a multiple
                    // of 32.
                    0 => random_modulus(bits).iter().map(|_| u32::MAX).collect(),
                    _ => random_modulus(bits),
                };
                let n = if round == 0 && bits % 32 != 0 {
                    random_modulus(bits)
                } else {
                    n
                };
                let len = n.len();
                let n0 = neg_inv(n[0]);
                let mut n_minus_1 = n.clone();
                n_minus_1[0] -= 1;
                let samples = [
                    (
                        ref_mod(&random_limbs(len), &n),
                        ref_mod(&random_limbs(len), &n),
                    ),
                    (n_minus_1.clone(), n_minus_1.clone()),
                    (vec![0; len], n_minus_1.clone()),
                    (ref_mod(&[1], &n), n_minus_1.clone()),
                ];
                for (a, b) in samples {
                    let mut out = vec![0u32; len];
                    mont_mul(&mut out, &a, &b, &n, n0);
                    assert_eq!(ref_cmp(&out, &n), Ordering::Less, "bits {bits}");
                    // out·R ≡ a·b (mod n)
                    assert_eq!(
                        ref_mod(&shifted(&out, len), &n),
                        ref_mod(&ref_mul(&a, &b), &n),
                        "bits {bits} round {round}"
                    );
                    mont_mul(&mut out, &a, &a, &n, n0);
                    assert_eq!(
                        ref_mod(&shifted(&out, len), &n),
                        ref_mod(&ref_mul(&a, &a), &n),
                        "square, bits {bits} round {round}"
                    );
                }
            }
        }
    }

    #[test]
    fn r_squared_matches_the_reference() {
        for bits in [2, 3, 32, 33, 63, 64, 65, 1023, 2048, 2058, 4096, 8192] {
            let n = random_modulus(bits);
            let key = key_for(&n, 65537);
            assert_eq!(key.n, n);
            assert_eq!(key.bits, bits);
            assert_eq!(key.k, bits.div_ceil(8));
            let mut r2 = vec![0u32; 2 * n.len()];
            r2.push(1);
            assert_eq!(key.rr, ref_mod(&r2, &n), "bits {bits}");
        }
    }

    #[test]
    fn exponentiation_matches_the_reference() {
        let exponents = [
            3u64,
            5,
            17,
            65537,
            (1 << 33) - 1,
            0x1_0000_0001,
            0xffff_ffff_ffff_ffff,
        ];
        for bits in [2, 40, 64, 100, 2048, 2058] {
            let n = random_modulus(bits);
            for &e in &exponents {
                let key = key_for(&n, e);
                for s in [ref_mod(&random_limbs(n.len()), &n), ref_mod(&[1], &n), {
                    let mut m = n.clone();
                    m[0] -= 1;
                    m
                }] {
                    if s.iter().all(|&l| l == 0) {
                        continue;
                    }
                    let sig = limbs_to_be(&s, key.k);
                    let want = limbs_to_be(&ref_modexp(&s, e, &n), key.k);
                    assert_eq!(key.public_op(&sig), Some(want), "bits {bits} e {e}");
                }
            }
        }
        // The largest sizes, with the cheapest exponents for the reference.
        for bits in [4096, 8191, 8192] {
            let n = random_modulus(bits);
            for e in [3u64, 5] {
                let key = key_for(&n, e);
                let s = ref_mod(&random_limbs(n.len()), &n);
                let want = limbs_to_be(&ref_modexp(&s, e, &n), key.k);
                assert_eq!(
                    key.public_op(&limbs_to_be(&s, key.k)),
                    Some(want),
                    "bits {bits} e {e}"
                );
            }
        }
    }

    #[test]
    fn arbitrary_input_is_refused_without_trapping() {
        // Random bytes of every length around the modulus size, under every algorithm: never a
        // panic, and ring agrees that none of them verifies.
        let key = ring_key(RSA2048);
        for len in (0..300).step_by(7).chain(250..260) {
            let sig = random_vec(len);
            for (alg, _, _) in ALGS {
                assert!(!both(&key.n, &key.e, &key.jwk, alg, MSG, &sig), "{len}");
            }
        }
        // Blocks that decrypt to anything at all, fed straight to the encoding checks.
        for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            for len in 0..300 {
                let block = random_vec(len);
                let m_hash = random_vec(64);
                let m_hash = &m_hash[..hash.algorithm().output_len()];
                for em_bits in [
                    8 * len,
                    (8 * len).saturating_sub(1),
                    (8 * len).saturating_sub(7),
                ] {
                    assert!(!pss_matches(&block, em_bits.max(1), hash, m_hash));
                }
                assert!(!pkcs1_matches(&block, hash, m_hash));
            }
        }
    }

    #[test]
    fn the_public_operation_takes_only_0_lt_s_lt_n_of_k_bytes() {
        let n = random_modulus(2058);
        let key = key_for(&n, 65537);
        let k = key.k;
        assert_eq!(k, 258);
        let n_be = limbs_to_be(&n, k);
        let mut n_minus_1 = n_be.clone();
        *n_minus_1.last_mut().unwrap() -= 1;
        assert!(key.public_op(&n_minus_1).is_some());
        assert!(key.public_op(&n_be).is_none());
        assert!(key.public_op(&vec![0xff; k]).is_none());
        assert!(key.public_op(&vec![0; k]).is_none());
        let mut one = vec![0; k];
        one[k - 1] = 1;
        assert_eq!(key.public_op(&one), Some(one.clone()));
        // The same value one byte shorter or longer is refused.
        assert!(key.public_op(&one[1..]).is_none());
        assert!(key.public_op(&[&[0u8][..], &one].concat()).is_none());
        assert!(key.public_op(&[]).is_none());
    }

    #[test]
    fn new_refuses_what_the_arithmetic_cannot_take() {
        let n = to_be(&random_modulus(2048));
        assert!(PublicKey::new(&n, &[1, 0, 1]).is_some());
        // Leading zeros are not part of the value.
        let padded = PublicKey::new(&[&[0, 0][..], &n].concat(), &[0, 3]).unwrap();
        assert_eq!((padded.k, padded.bits, padded.e), (256, 2048, 3));
        for e in [&[][..], &[0], &[1], &[2], &[1, 0, 0], &[1; 9]] {
            assert!(PublicKey::new(&n, e).is_none(), "{e:?}");
        }
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(PublicKey::new(&even, &[3]).is_none());
        for tiny in [&[][..], &[0], &[1], &[0, 1], &[2]] {
            assert!(PublicKey::new(tiny, &[3]).is_none(), "{tiny:?}");
        }
        assert!(PublicKey::new(&[3], &[3]).is_some());
    }

    // ---- Encodings. ----

    /// EMSA-PSS-ENCODE (RFC 8017 §9.1.1), written out independently for the tests.
    fn pss_encode(em_bits: usize, hash: Hash, m_hash: &[u8], salt: &[u8]) -> Vec<u8> {
        let alg = hash.algorithm();
        let em_len = em_bits.div_ceil(8);
        let h = digest::digest(alg, &[&[0u8; 8][..], m_hash, salt].concat());
        let db_len = em_len - h.as_ref().len() - 1;
        let mut db = vec![0u8; db_len - salt.len() - 1];
        db.push(1);
        db.extend_from_slice(salt);
        let mut mask = Vec::new();
        for counter in 0u32.. {
            if mask.len() >= db_len {
                break;
            }
            let block = [h.as_ref(), &counter.to_be_bytes()].concat();
            mask.extend_from_slice(digest::digest(alg, &block).as_ref());
        }
        for (d, m) in db.iter_mut().zip(&mask) {
            *d ^= m;
        }
        db[0] &= 0xff >> (8 * em_len - em_bits);
        [db, h.as_ref().to_vec(), vec![0xbc]].concat()
    }

    #[test]
    fn pss_for_every_top_byte_shape() {
        for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            let m_hash = digest::digest(hash.algorithm(), b"message");
            let m_hash = m_hash.as_ref();
            let salt = random_vec(m_hash.len());
            // Modulus of 2049 bits: emBits = 2048, so the block has a leading zero byte; of 2048
            // bits: emBits = 2047, one top bit masked; of 2058: seven bits masked.
            for mod_bits in [2049usize, 2048, 2058, 2055] {
                let k = mod_bits.div_ceil(8);
                let em = pss_encode(mod_bits - 1, hash, m_hash, &salt);
                let block = [vec![0u8; k - em.len()], em.clone()].concat();
                assert_eq!(block.len(), k);
                assert!(
                    pss_matches(&block, mod_bits - 1, hash, m_hash),
                    "{mod_bits}"
                );
                // Another message, salt length or trailer: refused.
                let other = digest::digest(hash.algorithm(), b"messagf");
                assert!(!pss_matches(&block, mod_bits - 1, hash, other.as_ref()));
                let short_salt = pss_encode(mod_bits - 1, hash, m_hash, &salt[1..]);
                let short_salt = [vec![0u8; k - short_salt.len()], short_salt].concat();
                assert!(!pss_matches(&short_salt, mod_bits - 1, hash, m_hash));
                let mut bad = block.clone();
                *bad.last_mut().unwrap() = 0xbd;
                assert!(!pss_matches(&bad, mod_bits - 1, hash, m_hash));
                // A set bit above emBits is refused, even though masking would hide it.
                let mut high = block.clone();
                let top = 8 * k - mod_bits; // number of zero bits above the modulus' top
                let pos = (8 * k - (mod_bits - 1)) - 1; // highest bit above emBits, from the left
                high[pos / 8] |= 0x80 >> (pos % 8);
                assert!(top < 8);
                assert!(
                    !pss_matches(&high, mod_bits - 1, hash, m_hash),
                    "{mod_bits}"
                );
            }
        }
    }

    #[test]
    fn pkcs1_compares_the_whole_block() {
        let hash = Hash::Sha256;
        let m_hash = digest::digest(hash.algorithm(), b"message");
        let m_hash = m_hash.as_ref();
        let t = [hash.digest_info_prefix(), m_hash].concat();
        let block =
            |k: usize| [vec![0, 1], vec![0xff; k - t.len() - 3], vec![0], t.clone()].concat();
        assert!(pkcs1_matches(&block(256), hash, m_hash));
        assert!(pkcs1_matches(&block(t.len() + 11), hash, m_hash));
        // Fewer than eight FF bytes.
        assert!(!pkcs1_matches(&block(t.len() + 10), hash, m_hash));
        // Any changed byte.
        let good = block(256);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(!pkcs1_matches(&bad, hash, m_hash), "byte {i}");
        }
        // Other hashes' prefixes are refused.
        assert!(!pkcs1_matches(&good, Hash::Sha384, m_hash));
    }

    // ---- Against ring: signatures ring makes, tampered ones both must refuse. ----

    struct RingKey {
        pair: RsaKeyPair,
        n: Vec<u8>,
        e: Vec<u8>,
        jwk: Key,
    }

    fn jwk_of(n: &[u8], e: &[u8]) -> Key {
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"{}"}}]}}"#,
            b64url_encode(n),
            b64url_encode(e)
        );
        parse_jwks(doc.as_bytes(), OPTS).unwrap().keys.remove(0)
    }

    fn ring_key(pkcs8: &[u8]) -> RingKey {
        let pair = RsaKeyPair::from_pkcs8(pkcs8).unwrap();
        let c: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let jwk = jwk_of(&c.n, &c.e);
        RingKey {
            pair,
            n: c.n,
            e: c.e,
            jwk,
        }
    }

    const ALGS: [(Alg, &dyn rsig::RsaEncoding, &rsig::RsaParameters); 6] = [
        (
            Alg::RS256,
            &rsig::RSA_PKCS1_SHA256,
            &rsig::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            Alg::RS384,
            &rsig::RSA_PKCS1_SHA384,
            &rsig::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            Alg::RS512,
            &rsig::RSA_PKCS1_SHA512,
            &rsig::RSA_PKCS1_2048_8192_SHA512,
        ),
        (
            Alg::PS256,
            &rsig::RSA_PSS_SHA256,
            &rsig::RSA_PSS_2048_8192_SHA256,
        ),
        (
            Alg::PS384,
            &rsig::RSA_PSS_SHA384,
            &rsig::RSA_PSS_2048_8192_SHA384,
        ),
        (
            Alg::PS512,
            &rsig::RSA_PSS_SHA512,
            &rsig::RSA_PSS_2048_8192_SHA512,
        ),
    ];

    fn ring_params(alg: Alg) -> &'static rsig::RsaParameters {
        ALGS.iter().find(|(a, _, _)| *a == alg).unwrap().2
    }

    /// Both verifiers' answers, which must agree.
    fn both(n: &[u8], e: &[u8], jwk: &Key, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
        let ours = jwk.verify(alg, msg, sig);
        let ring = RsaPublicKeyComponents { n, e }
            .verify(ring_params(alg), msg, sig)
            .is_ok();
        assert_eq!(ours.is_ok(), ring, "{alg}: ours {ours:?}, ring {ring}");
        if let Err(err) = ours {
            assert_eq!(err, VerifyError::BadSignature);
        }
        ring
    }

    /// The refusals every signature must show, checked with both verifiers.
    fn tampered_are_refused(n: &[u8], e: &[u8], jwk: &Key, alg: Alg, msg: &[u8], sig: &[u8]) {
        let k = sig.len();
        assert_eq!(k, n.len());
        let refused_as = |alg: Alg, m: &[u8], s: &[u8], what: &str| {
            assert!(!both(n, e, jwk, alg, m, s), "{alg}: {what} accepted");
        };
        let refused = |m: &[u8], s: &[u8], what: &str| refused_as(alg, m, s, what);
        // Flipped bits in the signature: all of the first and last bytes, a stride elsewhere.
        for bit in 0..8 * k {
            if bit < 16 || bit >= 8 * k - 16 || bit % 61 == 0 {
                let mut s = sig.to_vec();
                s[bit / 8] ^= 0x80 >> (bit % 8);
                refused(msg, &s, &format!("signature bit {bit} flipped"));
            }
        }
        // Flipped bits in the message.
        for bit in (0..8 * msg.len()).step_by(13) {
            let mut m = msg.to_vec();
            m[bit / 8] ^= 0x80 >> (bit % 8);
            refused(&m, sig, &format!("message bit {bit} flipped"));
        }
        refused(&msg[..msg.len() - 1], sig, "message truncated");
        refused(&[msg, b"x"].concat(), sig, "message extended");
        refused(msg, &sig[..k - 1], "signature truncated at the end");
        refused(msg, &sig[1..], "signature truncated at the start");
        refused(msg, &[&[0u8][..], sig].concat(), "leading zero byte");
        refused(msg, &[sig, &[0u8][..]].concat(), "trailing zero byte");
        refused(msg, &[], "empty signature");
        refused(msg, &vec![0u8; k], "s = 0");
        let mut one = vec![0u8; k];
        one[k - 1] = 1;
        refused(msg, &one, "s = 1");
        refused(msg, n, "s = n");
        let mut n_minus_1 = n.to_vec();
        n_minus_1[k - 1] -= 1; // n is odd
        refused(msg, &n_minus_1, "s = n - 1");
        let mut n_plus_1 = n.to_vec();
        n_plus_1[k - 1] += 1; // n is odd, so no carry
        refused(msg, &n_plus_1, "s = n + 1");
        refused(msg, &vec![0xff; k], "s = 2^8k - 1");
        // s + n has the same value mod n, but is not below n.
        let mut plus_n = sig.to_vec();
        let mut carry = 0u16;
        for (x, y) in plus_n.iter_mut().rev().zip(n.iter().rev()) {
            let t = u16::from(*x) + u16::from(*y) + carry;
            *x = t as u8;
            carry = t >> 8;
        }
        if carry == 0 {
            refused(msg, &plus_n, "s + n");
        }
        // The same signature under another hash or padding.
        for (other, _, _) in ALGS {
            if other != alg {
                refused_as(
                    other,
                    msg,
                    sig,
                    &format!("{alg} signature verified as {other}"),
                );
            }
        }
    }

    #[test]
    fn ring_signatures_verify_and_tampered_ones_are_refused() {
        let rng = SystemRandom::new();
        let messages: [&[u8]; 2] = [b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0", &[0u8; 300]];
        for (name, pkcs8) in [("2048", RSA2048), ("4096", RSA4096)] {
            let key = ring_key(pkcs8);
            assert_eq!(key.e, [1, 0, 1]);
            for (alg, encoding, _) in ALGS {
                for (i, msg) in messages.iter().enumerate() {
                    let mut sig = vec![0u8; key.pair.public().modulus_len()];
                    key.pair.sign(encoding, &rng, msg, &mut sig).unwrap();
                    assert!(
                        both(&key.n, &key.e, &key.jwk, alg, msg, &sig),
                        "{name} {alg}: ring's signature refused"
                    );
                    if i == 0 {
                        tampered_are_refused(&key.n, &key.e, &key.jwk, alg, msg, &sig);
                    }
                }
            }
        }
    }

    fn from_hex(text: &str) -> Vec<u8> {
        let text = text.trim();
        // openssl drops a leading zero digit.
        let text = if text.len() % 2 == 1 {
            format!("0{text}")
        } else {
            text.to_owned()
        };
        hex(&text)
    }

    #[test]
    fn openssl_signatures_with_exponent_3_and_an_odd_size_modulus() {
        for (n_hex, e, bits, sigs) in [
            (E3_N_HEX, &[3u8][..], 2048usize, &E3_SIGS[..]),
            (N2058_HEX, &[1, 0, 1][..], 2058, &SIGS_2058[..]),
        ] {
            let n = from_hex(n_hex);
            assert_eq!(n.len(), bits.div_ceil(8));
            let jwk = jwk_of(&n, e);
            let crate::jwk::KeyMaterial::Rsa { public, .. } = &jwk.key else {
                panic!("not an RSA key")
            };
            assert_eq!(public.bits, bits);
            for &(alg, sig) in sigs {
                assert!(both(&n, e, &jwk, alg, MSG, sig), "{bits} {alg}");
                tampered_are_refused(&n, e, &jwk, alg, MSG, sig);
            }
        }
    }

    #[test]
    fn prepared_key_survives_clone_and_re_export() {
        let key = ring_key(RSA2048);
        let rng = SystemRandom::new();
        let mut sig = vec![0u8; 256];
        key.pair
            .sign(&rsig::RSA_PKCS1_SHA256, &rng, b"m", &mut sig)
            .unwrap();
        let cloned = key.jwk.clone();
        assert_eq!(cloned.verify(Alg::RS256, b"m", &sig), Ok(()));
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"AQAB"}}]}}"#,
            b64url_encode(&key.n)
        );
        let set = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        let again = parse_jwks(set.to_json().as_bytes(), OPTS).unwrap();
        assert_eq!(again.keys[0].verify(Alg::RS256, b"m", &sig), Ok(()));
        assert_eq!(
            again.keys[0].verify(Alg::RS256, b"n", &sig),
            Err(VerifyError::BadSignature)
        );
    }

    /// Native cost of one RS256 verification, ours against ring's.
    /// `cargo test --release -p shieldwall-jose rs256_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn rs256_timing() {
        for (name, pkcs8) in [("2048", RSA2048), ("4096", RSA4096)] {
            let key = ring_key(pkcs8);
            let msg = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0";
            let mut sig = vec![0u8; key.pair.public().modulus_len()];
            key.pair
                .sign(&rsig::RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                .unwrap();
            let rounds = 2000;
            let time = |f: &dyn Fn() -> bool| crate::testutil::best_micros(rounds, f);
            let ours = time(&|| key.jwk.verify(Alg::RS256, msg, &sig).is_ok());
            let ring = time(&|| {
                RsaPublicKeyComponents {
                    n: &key.n,
                    e: &key.e,
                }
                .verify(&rsig::RSA_PKCS1_2048_8192_SHA256, msg, &sig)
                .is_ok()
            });
            println!("RS256 {name}-bit: ours {ours:.1} us, ring {ring:.1} us per verification");
        }
    }
}
