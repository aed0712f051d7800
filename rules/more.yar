// Private keys in less common text and binary encodings: hex-spelled DER, .NET XML RSA keys,
// `openssl ... -text` dumps, Java KeyStores, base64-encoded PEM files. Each hit is proven by its validator; every string
// is anchored on a literal prefix of the key (not on a character class), so random hex, XML
// or text does not become a candidate storm.

rule hex_der_private_key
{
    meta:
        validator = "hex_der"
        format = "hex-der"
        severity = "high"
        description = "Hex-encoded DER private key (PKCS#1, PKCS#8, SEC1): bare or wrapped hex (xxd -p), \\x escapes, C/Java byte arrays"
        selftest = "hex_der_pkcs8_rsa_xxd,hex_der_sec1_ec_upper,hex_der_pkcs8_ed25519_escaped,hex_der_pkcs1_rsa_c_array"
    strings:
        // Hex patterns over the hex text, digits only, so either letter case matches. Two
        // prefixes cover every form (the validator decodes and tells them apart); one pattern
        // per form cost YARA-X its fast path (see rules/README.md):
        // 3082....020100: PKCS#1 RSA, PKCS#8 RSA and DSA (long length)
        // 30[..]020100 30 / 30[..]020101 04: PKCS#8 EC, Ed25519, X25519, Ed448, X448; SEC1
        $long = { 33 30 38 32 [4] 30 32 30 31 30 30 }
        $short = { 33 30 [2-4] 30 32 30 31 30 ( 30 33 30 | 31 30 34 ) }
        // \x30 ... \x02\x01\x0[01]: the same keys as string-literal escapes
        $escaped = { 5C 78 33 30 [4-12] 5C 78 30 32 5C 78 30 31 5C 78 30 ( 30 | 31 ) 5C 78 }
        // 0x30, ..., 0x02, 0x01, 0x0[01],: C arrays (xxd -i) and Java (byte) arrays
        $array = { 30 78 33 30 2C [1-60] 30 78 30 32 2C [1-14] 30 78 30 31 2C [1-14] 30 78 30 ( 30 | 31 ) 2C }
    condition:
        any of them
}

rule xml_rsa_private_key
{
    meta:
        validator = "xml_rsa"
        format = "xml-rsa"
        severity = "high"
        description = ".NET XML RSA private key (<RSAKeyValue> with P, Q, D...), plain, in a JSON/config string or XML-escaped"
        selftest = "xml_rsa_dotnet,xml_rsa_json_config"
    strings:
        // the bare name: the validator steps back onto "<" or "&lt;" (a closing tag gives nothing)
        $name = "RSAKeyValue" ascii wide
    condition:
        any of them
}

rule openssl_text_private_key
{
    meta:
        validator = "openssl_text"
        format = "openssl-text"
        severity = "high"
        description = "Private key printed by `openssl pkey|rsa|ec|dsa -text` (RSA, EC, DSA, Ed25519, X25519, Ed448, X448)"
        selftest = "openssl_text_rsa,openssl_text_ec_crlf,openssl_text_ed25519,openssl_text_dsa"
    strings:
        // "Private-Key: (2048 bit, 2 primes)", "RSA Private-Key: (...)" (1.x), "Private-Key: (256 bit)",
        // "ED25519 Private-Key:": one literal, one atom; the validator reads the type before it
        $head = "Private-Key:"
    condition:
        any of them
}

rule java_keystore_private_key
{
    meta:
        validator = "jks"
        format = "jks"
        severity = "high"
        description = "Java KeyStore (JKS v1/v2, JCEKS) holding a password-protected private-key entry"
        selftest = "jks_rsa,jceks_ec_after_trusted_cert"
    strings:
        // magic, version, an entry count below 65536, then the first entry's tag
        $jks = { FE ED FE ED 00 00 00 ( 01 | 02 ) 00 00 ?? ?? 00 00 00 ( 01 | 02 ) }
        $jceks = { CE CE CE CE 00 00 00 02 00 00 ?? ?? 00 00 00 ( 01 | 02 | 03 ) }
    condition:
        any of them
}

rule base64_pem_private_key
{
    meta:
        validator = "base64_pem"
        format = "base64-pem"
        severity = "high"
        description = "A whole PEM file base64-encoded: kubeconfig client-key-data, Kubernetes Secret tls.key, Helm and CI values"
        selftest = "base64_pem_kubeconfig,base64_pem_secret_bundle"
    strings:
        // base64 of "-----BEGIN" at the start of an encoded file; the validator decodes the
        // run and keeps only private-key blocks (an encoded certificate gives nothing)
        $b = "LS0tLS1CRUdJTi"
    condition:
        $b
}

rule gnupg_private_key
{
    meta:
        validator = "gnupg"
        format = "gnupg-key"
        severity = "high"
        description = "GnuPG 2.1+ secret key file (private-keys-v1.d/*.key): clear or passphrase-protected, extended text or canonical S-expression"
        selftest = "gnupg_rsa_extended,gnupg_ed25519_canonical,gnupg_protected_p256"
    strings:
        // One literal for all four heads: "(private-key", "(11:private-key",
        // "(protected-private-key", "(21:protected-private-key"; the validator steps back
        // onto the "(" and tells them apart ("--private-key" and the like give nothing)
        $k = "private-key"
    condition:
        $k
}

rule openpgp_binary_secret_key
{
    meta:
        validator = "pgp_binary"
        format = "pgp-binary"
        severity = "high"
        anchor = "start"
        description = "Binary OpenPGP secret key (gpg --export-secret-keys without --armor, GnuPG 1.x secring.gpg): clear or passphrase-protected"
        selftest = "pgp_binary_rsa_old_format,pgp_binary_ed25519,pgp_binary_encrypted"
    condition:
        // No strings: the file (or archive member) starts with a secret-key packet (tag 5)
        // in the old format (0x94, 0x95: one or two length bytes) or the new (0xC5), then
        // key version 4, 5 or 6. Any pattern for these few bytes would be an atom common in
        // binaries (see rules/README.md); a condition on the first bytes costs nothing, and
        // the scanner hands such a rule's hit at offset 0 of a stream to its validator.
        (uint8(0) == 0x94 and uint8(2) >= 4 and uint8(2) <= 6) or
        (uint8(0) == 0x95 and uint8(3) >= 4 and uint8(3) <= 6) or
        (uint8(0) == 0xC5 and uint8(1) < 192 and uint8(2) >= 4 and uint8(2) <= 6) or
        (uint8(0) == 0xC5 and uint8(1) >= 192 and uint8(1) < 224 and uint8(3) >= 4 and uint8(3) <= 6)
}
