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

rule base64_pkcs12_pfx
{
    meta:
        validator = "base64_pkcs12"
        format = "base64-pkcs12"
        severity = "high"
        description = "Base64 of a PFX without armour: Azure and Kubernetes secrets, CI variables, JSON and XML configs, with or without line breaks"
        selftest = "base64_pkcs12_json,base64_pkcs12_wrapped_rsa,base64_pkcs12_password"
    strings:
        // base64 of 30 82 xx xx 02 01 03 30 (81|82) ...: PFX version 3, then the authSafe's
        // ContentInfo (whose data OID follows); one anchor ("IBAzC") for both inner lengths,
        // the validator decodes and walks the rest
        $b = /MII[A-Za-z0-9+\/]{3}IBAzC[BC]/
    condition:
        $b
}
