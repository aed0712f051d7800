// Armoured private keys (PEM and OpenPGP). Every hit is proven by the `pem` validator:
// the armour is decoded and the key inside checked (p*q = n, point on the curve, ...).
// The ASCII and JSON-escaped rules are disjoint (the character after the dashes decides),
// so one key in one place is one hit.

rule pem_private_key
{
    meta:
        validator = "pem"
        format = "pem-pkcs8"
        severity = "high"
        description = "PEM private key (PKCS#8, PKCS#1, SEC1, DSA, encrypted PKCS#8, legacy encrypted, OpenSSH), LF or CRLF, plain or indented, line ends as XML character references or markup (a .docx paragraph per line)"
        selftest = "pem_pkcs8_rsa,pem_pkcs8_ec,pem_pkcs8_ed25519,pem_pkcs1_rsa_crlf,pem_sec1_ec,pem_encrypted_pkcs8,pem_legacy_encrypted_rsa,pem_indented_yaml,pem_xml_character_references,pem_docx_paragraphs"
    strings:
        $begin = /-----BEGIN (RSA |EC |DSA |SM2 |ENCRYPTED |OPENSSH )?PRIVATE KEY-----[^\\]/
    condition:
        $begin
}

rule pem_private_key_json_escaped
{
    meta:
        validator = "pem"
        format = "pem-pkcs8"
        severity = "high"
        description = "PEM private key inside a string literal with escaped line ends, once or twice escaped (GCP service-account JSON, JSON inside JSON logs, .env, source code)"
        selftest = "pem_json_escaped_gcp,pem_json_double_escaped,pem_source_string_literals"
    strings:
        $begin = /-----BEGIN (RSA |EC |DSA |SM2 |ENCRYPTED |OPENSSH )?PRIVATE KEY-----\\{1,3}([rn]|u000[aAdD])/
    condition:
        $begin
}

rule pem_private_key_url_encoded
{
    meta:
        validator = "pem"
        format = "pem-pkcs8"
        severity = "high"
        description = "PEM private key URL-encoded (query strings, form posts in HAR files and access logs), spaces as %20 or +"
        selftest = "pem_url_encoded,pem_form_encoded"
    strings:
        $begin = /-----BEGIN(%20|\+)([A-Z]{2,9}(%20|\+))?PRIVATE(%20|\+)KEY-----/
    condition:
        $begin
}

rule pem_private_key_utf16
{
    meta:
        validator = "pem"
        format = "pem-pkcs8"
        severity = "high"
        description = "PEM private key of any kind, OpenPGP included, in UTF-16LE text (Windows files and process memory); the validator reads the label"
        selftest = "pem_utf16le_rsa"
    strings:
        $begin = "-----BEGIN " wide
    condition:
        any of them
}

rule pgp_private_key_block
{
    meta:
        validator = "pem"
        format = "pgp-private"
        severity = "high"
        description = "OpenPGP secret key block (ASCII armour, plain or escaped; UTF-16LE through pem_private_key_utf16)"
        selftest = "pgp_private_rsa,pgp_private_ed25519,pgp_private_encrypted"
    strings:
        $begin = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
    condition:
        $begin
}
