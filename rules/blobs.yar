// Windows CryptoAPI and CNG private key blobs. Public blobs (PUBLICKEYBLOB, RSA1, ECS1/ECK1...)
// carry other magics and are not matched.

rule capi_rsa_privatekeyblob
{
    meta:
        validator = "capi_blob"
        format = "capi-privatekeyblob"
        severity = "high"
        description = "CryptoAPI PRIVATEKEYBLOB (BLOBHEADER type 7, RSAPUBKEY RSA2), also without its BLOBHEADER"
        selftest = "capi_privatekeyblob,capi_privatekeyblob_bare"
    strings:
        // BLOBHEADER {PRIVATEKEYBLOB, CUR_BLOB_VERSION, 0, CALG_RSA_KEYX | CALG_RSA_SIGN} + "RSA2"
        $hdr = { 07 02 00 00 00 ( A4 | 24 ) 00 00 52 53 41 32 }
        // "RSA2" + bitlen (a multiple of 256 up to 64K bits)
        $bare = { 52 53 41 32 00 ?? 00 00 }
    condition:
        any of them
}

rule cng_rsa_private_blob
{
    meta:
        validator = "cng_rsa"
        format = "cng-rsaprivate"
        severity = "high"
        description = "CNG BCRYPT_RSAKEY_BLOB with RSAPRIVATE (RSA2) or RSAFULLPRIVATE (RSA3) magic"
        selftest = "cng_rsaprivate,cng_rsafullprivate"
    strings:
        // magic, BitLength, cbPublicExp (1..255), cbModulus, cbPrime1, cbPrime2 (all < 64 KiB)
        $k = { 52 53 41 ( 32 | 33 ) ?? ?? 00 00 ?? 00 00 00 ?? ?? 00 00 ?? ?? 00 00 ?? ?? 00 00 }
    condition:
        $k
}

rule cng_ecc_private_blob
{
    meta:
        validator = "cng_ecc"
        format = "cng-eccprivate"
        severity = "high"
        description = "CNG BCRYPT_ECCKEY_BLOB with an ECDH/ECDSA private magic (ECK2/4/6, ECS2/4/6, generic)"
        selftest = "cng_eccprivate"
    strings:
        // "ECK"/"ECS" + 2, 4, 6 or V (generic), then cbKey 32, 48 or 66
        // the fourth magic byte (2, 4, 6 or V) is left to the validator: spelled out here it
        // costs YARA-X eight atoms of its 64-atom fast path (see rules/README.md)
        $k = { 45 43 ( 4B | 53 ) ?? ( 20 | 30 | 42 ) 00 00 00 }
    condition:
        $k
}

rule pvk_encrypted_private_key
{
    meta:
        validator = "pvk"
        format = "pvk-encrypted"
        severity = "high"
        anchor = "start"
        description = "Passphrase-protected PVK file (Microsoft private key file; openssl -outform PVK, pvk2pfx inputs)"
        selftest = "pvk_encrypted_rsa,pvk_encrypted_dsa"
    condition:
        // No strings: a PVK file starts with its magic, reserved 0, the key spec and the
        // encrypted flag. A condition on the first bytes adds no atom to YARA-X's fast path
        // (see rules/README.md); a clear PVK is found by capi_rsa_privatekeyblob inside it.
        uint32(0) == 0xB0B5F11E and uint32(4) == 0 and uint32(12) == 1
}
