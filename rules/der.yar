// Raw DER private keys. Each string anchors on the exact tag/length/version bytes and the
// algorithm OID; the `der` validator reads the DER length, so bytes after the key do not matter.

rule der_pkcs1_rsa_private_key
{
    meta:
        validator = "der"
        format = "der-pkcs1"
        severity = "high"
        description = "PKCS#1 RSAPrivateKey (version 0, then the modulus INTEGER)"
        selftest = "der_pkcs1_rsa"
    strings:
        // SEQUENCE, version 0, modulus INTEGER with its sign byte (512-bit: 65 bytes; larger: 81/82)
        $k = { 30 82 ?? ?? 02 01 00 02 ( 41 | 81 ?? | 82 ?? ?? ) 00 }
    condition:
        $k
}

rule der_pkcs8_private_key
{
    meta:
        validator = "der"
        format = "der-pkcs8"
        severity = "high"
        description = "PKCS#8 PrivateKeyInfo / OneAsymmetricKey (RSA, RSA-PSS, EC, Ed25519, Ed448, X25519, X448, DSA)"
        selftest = "der_pkcs8_rsa,der_pkcs8_ec,der_pkcs8_ed25519"
    strings:
        // rsaEncryption, or rsassaPss (`openssl genpkey -algorithm RSA-PSS`; with or without params)
        $rsa = { 30 82 ?? ?? 02 01 ( 00 | 01 ) 30 ?? 06 09 2A 86 48 86 F7 0D 01 01 ( 01 | 0A ) }
        $ec = { 30 ( 81 ?? | 82 ?? ?? | ?? ) 02 01 ( 00 | 01 ) 30 ?? 06 07 2A 86 48 CE 3D 02 01 06 }
        $edx = { 30 ( 81 ?? | ?? ) 02 01 ( 00 | 01 ) 30 05 06 03 2B 65 ( 6E | 6F | 70 | 71 ) 04 }
        $dsa = { 30 82 ?? ?? 02 01 ( 00 | 01 ) 30 82 ?? ?? 06 07 2A 86 48 CE 38 04 01 30 }
    condition:
        any of them
}

rule der_sec1_ec_private_key
{
    meta:
        validator = "der"
        format = "der-sec1"
        severity = "high"
        description = "SEC1 ECPrivateKey (version 1, then a 24/28/32/48/64/65/66-byte scalar: P-192 to P-521, secp256k1, Brainpool, SM2)"
        selftest = "der_sec1_ec"
    strings:
        $k = { 30 ( 81 ?? | ?? ) 02 01 01 04 ( 18 | 1C | 20 | 30 | 40 | 41 | 42 ) }
    condition:
        $k
}

rule der_encrypted_private_key_info
{
    meta:
        validator = "der"
        format = "der-encrypted-pkcs8"
        severity = "high"
        description = "PKCS#8 EncryptedPrivateKeyInfo (PBES2, PBES1 or PKCS#12 PBE)"
        selftest = "der_encrypted_pkcs8"
    strings:
        $pbes2 = { 30 ( 81 ?? | 82 ?? ?? ) 30 ( 81 ?? | ?? ) 06 09 2A 86 48 86 F7 0D 01 05 0D 30 }
        $pbes1 = { 30 ( 81 ?? | 82 ?? ?? ) 30 ?? 06 09 2A 86 48 86 F7 0D 01 05 ( 01 | 03 | 04 | 06 | 0A | 0B ) 30 }
        $p12pbe = { 30 ( 81 ?? | 82 ?? ?? ) 30 ?? 06 0A 2A 86 48 86 F7 0D 01 0C 01 ( 01 | 02 | 03 | 04 | 05 | 06 ) 30 }
    condition:
        any of them
}
