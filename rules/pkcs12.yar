// PKCS#12 / PFX files (.pfx, .p12): a key store that may hold private keys, often with an empty
// password.

rule pkcs12_pfx
{
    meta:
        validator = "pkcs12"
        format = "pkcs12"
        severity = "high"
        description = "DER PFX: version 3, then the authSafe ContentInfo of type data"
        selftest = "pkcs12_empty_password,pkcs12_no_password"
    strings:
        $k = { 30 ( 81 ?? | 82 ?? ?? | 83 ?? ?? ?? ) 02 01 03 30 ( 81 ?? | 82 ?? ?? | 83 ?? ?? ?? ) 06 09 2A 86 48 86 F7 0D 01 07 01 }
    condition:
        $k
}
