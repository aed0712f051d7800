// Private keys in less common text and binary encodings: hex-spelled DER, .NET XML RSA keys,
// `openssl ... -text` dumps, Java KeyStores. Each hit is proven by its validator; every string
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
        // 30 82 xx xx 02 01 00 02 8[12]: PKCS#1 RSA
        $pkcs1 = /3082[0-9a-f]{4}0201000282/ nocase
        // 30 82 xx xx 02 01 00 30 0d 06 09 2a 86 48 86 f7 0d 01 01 01 05 00: PKCS#8 RSA
        $pkcs8_rsa = /3082[0-9a-f]{4}020100300d06092a864886f70d0101010500/ nocase
        // 30 (81 xx | xx) 02 01 00 30 1[03] 06 07 2a 86 48 ce 3d 02 01: PKCS#8 EC
        $pkcs8_ec = /30(81)?[0-9a-f]{2}020100301[03]06072a8648ce3d0201/ nocase
        // 30 xx 02 01 0[01] 30 05 06 03 2b 65 (70|6e|71|6f) 04: PKCS#8 Ed25519, X25519, Ed448, X448
        $pkcs8_okp = /30[0-9a-f]{2}02010[01]300506032b65(70|6e|71|6f)04/ nocase
        // 30 82 xx xx 02 01 00 30 82 xx xx 06 07 2a 86 48 ce 38 04 01: PKCS#8 DSA
        $pkcs8_dsa = /3082[0-9a-f]{4}0201003082[0-9a-f]{4}06072a8648ce380401/ nocase
        // SEC1 ECPrivateKey: P-256, secp256k1, P-384, P-521
        $sec1 = /30(77|74|81a4|81dc)02010104(20|30|42)/ nocase
        // the same prefixes as \x escapes and as byte-array elements: SEQUENCE, then version
        $escaped = /\\x30(\\x8[12])?(\\x[0-9a-f]{2}){1,2}\\x02\\x01\\x0[01]\\x(02|04|30)/ nocase
        $array = /0x30,\s{0,8}((\(byte\)\s{0,2})?0x[0-9a-f]{2},\s{0,8}){1,3}(\(byte\)\s{0,2})?0x02,\s{0,8}(\(byte\)\s{0,2})?0x01,\s{0,8}(\(byte\)\s{0,2})?0x0[01],/ nocase
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
        $xml = "<RSAKeyValue>" ascii wide
        $escaped = "&lt;RSAKeyValue&gt;" ascii wide
    condition:
        any of them
}

rule openssl_text_private_key
{
    meta:
        validator = "openssl_text"
        format = "openssl-text"
        severity = "high"
        description = "Private key printed by `openssl pkey|rsa|ec -text` (RSA, EC, Ed25519, X25519, Ed448, X448)"
        selftest = "openssl_text_rsa,openssl_text_ec_crlf,openssl_text_ed25519"
    strings:
        // RSA and EC: "Private-Key: (2048 bit, 2 primes)", "Private-Key: (256 bit)"; "RSA " before it in 1.x
        $rsa_ec = /Private-Key: \([0-9]{3,5} bit/
        $okp = /(ED25519|X25519|ED448|X448) Private-Key:/
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
