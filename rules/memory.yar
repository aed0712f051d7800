/*
  Key material from memory: DER bodies whose header was overwritten.

  A freed DER buffer loses its first 16-32 bytes to allocator pointers, so
  these rules anchor inside the body. The partial_der validator rebuilds the
  key from what is intact and stays silent when the header is intact (the
  `der` rules own those keys). Keys held only as numbers (OpenSSL BIGNUM
  limbs, Java BigInteger) have no bytes to anchor on: the number search in
  agent/scan/dumps finds them in dump files.
*/

rule der_partial_rsa
{
    meta:
        validator = "partial_der"
        format = "der-partial-rsa"
        severity = "high"
        description = "RSA private key body: publicExponent 65537, then privateExponent"
        selftest = "der_partial_rsa_2048,der_partial_rsa_pointers"
    strings:
        $e_then_d_long = { 02 03 01 00 01 02 82 ?? ?? }
        $e_then_d_short = { 02 03 01 00 01 02 81 ?? }
    condition:
        any of them
}

rule der_partial_sec1
{
    meta:
        validator = "partial_der"
        format = "der-partial-sec1"
        severity = "high"
        description = "SEC1 ECPrivateKey body: version 1, the scalar, then the curve or the public point"
        selftest = "der_partial_sec1_p256,der_partial_sec1_p384"
    strings:
        $b32 = { 02 01 01 04 20 [32] ( A0 0A 06 08 2A 86 48 CE 3D 03 01 07 | A0 07 06 05 2B 81 04 00 0A | A1 44 03 42 00 04 ) }
        $b48 = { 02 01 01 04 30 [48] ( A0 07 06 05 2B 81 04 00 22 | A1 64 03 62 00 04 ) }
        $b66 = { 02 01 01 04 42 [66] ( A0 07 06 05 2B 81 04 00 23 | A1 81 86 03 81 82 00 04 ) }
    condition:
        any of them
}
