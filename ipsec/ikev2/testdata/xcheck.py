#!/usr/bin/env python3
"""Independent IKEv2 key derivation for ikev2's cross-check test.

Uses Python's `cryptography` module (OpenSSL), not Go: the DH shared
secrets (RFC 5903 section 8.1 ecp256 keys, RFC 7748 section 6.1 X25519
keys), SKEYSEED, prf+, the SK_* split for aes256gcm16-prfsha256, KEYMAT for
a CHILD SA with and without PFS, the rekeyed SKEYSEED, one SK payload
sealed with AES-GCM per RFC 5282, and a NAT_DETECTION hash.
Run: python3 testdata/xcheck.py > testdata/xcheck.json
"""
import hashlib, hmac, json, struct
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

H = bytes.fromhex

def prf(k, d):
    return hmac.new(k, d, hashlib.sha256).digest()

def prfplus(k, s, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(k, t + s + bytes([i]))
        out += t
        i += 1
    return out[:n]

i_priv = int("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433", 16)
r_priv = int("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53", 16)
ki = ec.derive_private_key(i_priv, ec.SECP256R1())
kr = ec.derive_private_key(r_priv, ec.SECP256R1())
gi = ki.public_key().public_numbers()
gr = kr.public_key().public_numbers()
gir = ki.exchange(ec.ECDH(), kr.public_key())

a = x25519.X25519PrivateKey.from_private_bytes(H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
b = x25519.X25519PrivateKey.from_private_bytes(H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
x_gir = a.exchange(b.public_key())

ni = bytes(range(32))
nr = bytes(range(100, 132))
spii, spir = 0x0102030405060708, 0x1112131415161718
skeyseed = prf(ni + nr, gir)
km = prfplus(skeyseed, ni + nr + struct.pack(">QQ", spii, spir), 32 * 3 + 36 * 2)
names = ["SKd", "SKei", "SKer", "SKpi", "SKpr"]
sizes = [32, 36, 36, 32, 32]
keys, off = {}, 0
for n, s in zip(names, sizes):
    keys[n] = km[off:off + s].hex()
    off += s
skd = km[:32]
keymat = prfplus(skd, ni + nr, 36 * 2)
keymat_pfs = prfplus(skd, x_gir + ni + nr, 36 * 2)
rekey = prf(skd, x_gir + ni + nr)

# One SK payload sealed with SK_ei: header (IKE_AUTH, msg ID 1, I flag),
# generic header naming a Nonce as first inner payload, IV 8 bytes.
inner = struct.pack(">BBH", 0, 0, 4 + 16) + bytes([0xaa]) * 16  # Nonce payload
pt = inner + b"\x00"  # no padding, pad length 0
iv = H("0001020304050607")
total = 28 + 4 + 8 + len(pt) + 16
hdr = struct.pack(">QQBBBBII", spii, spir, 46, 0x20, 35, 0x08, 1, total)
skh = struct.pack(">BBH", 40, 0, total - 28)
ei = H(keys["SKei"])
ct = AESGCM(ei[:32]).encrypt(ei[32:] + iv, pt, hdr + skh)
sk_message = hdr + skh + iv + ct

nat = hashlib.sha1(struct.pack(">QQ", spii, 0) + bytes([192, 0, 2, 1]) + struct.pack(">H", 500)).digest()

print(json.dumps({
    "ecp256_gi": (gi.x.to_bytes(32, "big") + gi.y.to_bytes(32, "big")).hex(),
    "ecp256_gr": (gr.x.to_bytes(32, "big") + gr.y.to_bytes(32, "big")).hex(),
    "ecp256_gir": gir.hex(),
    "x25519_gir": x_gir.hex(),
    "ni": ni.hex(), "nr": nr.hex(),
    "skeyseed": skeyseed.hex(),
    "keys": keys,
    "keymat": keymat.hex(),
    "keymat_pfs": keymat_pfs.hex(),
    "rekey_skeyseed": rekey.hex(),
    "sk_message": sk_message.hex(),
    "nat_hash": nat.hex(),
}, indent=1))
