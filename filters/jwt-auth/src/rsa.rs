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

use ring::digest;

/// The hash of a JWS RSA algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
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
            mont_sqr(&mut tmp, &acc, n, n0);
            std::mem::swap(&mut acc, &mut tmp);
            if (self.e >> i) & 1 == 1 {
                mont_mul(&mut tmp, &acc, &base, n, n0);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Bit 0 is set (e is odd): square, then multiply by s itself rather than s·R, which
        // also leaves the Montgomery domain: s^(e−1)·R · s · R⁻¹ = s^e.
        mont_sqr(&mut tmp, &acc, n, n0);
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
fn limbs_from_be(be: &[u8], len: usize) -> Option<Vec<u32>> {
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
fn neg_inv(x: u32) -> u32 {
    let mut inv = x;
    for _ in 0..4 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// a < b, for equal lengths.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// a −= b, ignoring the final borrow (callers know a ≥ b, counting a carried top bit).
fn sub_assign(a: &mut [u32], b: &[u32]) {
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
fn r_squared(n: &[u32], n0: u32, bits: usize) -> Option<Vec<u32>> {
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
        mont_sqr(&mut tmp, &x, n, n0);
        std::mem::swap(&mut x, &mut tmp);
    }
    Some(x)
}

/// out = a·b·R⁻¹ mod n (Montgomery multiplication, operand scanning with the reduction
/// interleaved). a, b < n; every slice has n's length. The result is fully reduced.
fn mont_mul(out: &mut [u32], a: &[u32], b: &[u32], n: &[u32], n0: u32) {
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

/// out = a²·R⁻¹ mod n for a < n.
fn mont_sqr(out: &mut [u32], a: &[u32], n: &[u32], n0: u32) {
    mont_mul(out, a, a, n, n0);
}
