// Private keys in text without PEM armour: PuTTY PPK, JWK, base64 DER.
// Each hit is proven by its validator; the strings are anchored on literal atoms
// so random text and base64 do not produce a candidate storm.

rule putty_ppk
{
    meta:
        validator = "ppk"
        format = "ppk"
        severity = "high"
        description = "PuTTY private key file, version 2 or 3, clear or encrypted"
        selftest = "ppk_v2_rsa,ppk_v3_ed25519,ppk_v3_encrypted_ecdsa"
    strings:
        $v = "PuTTY-User-Key-File-" ascii wide
    condition:
        any of them
}

rule jwk_private
{
    meta:
        validator = "jwk"
        format = "jwk"
        severity = "high"
        description = "JSON Web Key (or a key in a JWK set) with its private member d"
        selftest = "jwk_private_rsa,jwk_private_ec,jwk_private_okp_set"
    strings:
        $d = /"d"[ \t\r\n]{0,16}:[ \t\r\n]{0,16}"[A-Za-z0-9_\-]{16}/
    condition:
        $d
}

rule base64_der_private_key
{
    meta:
        validator = "base64_der"
        format = "base64-der"
        severity = "high"
        description = "Base64 of a DER private key without armour (PKCS#8, PKCS#1, SEC1, DSA), with or without line breaks"
        selftest = "base64_der_pkcs8_rsa_env,base64_der_sec1_ec_json,base64_der_pkcs8_ed25519"
    strings:
        // 30 82 xx xx 02 01 00 30 0d 06 09 2a 86 48 86 f7 0d 01 01 01 05 00 04: PKCS#8 RSA
        $pkcs8_rsa = /MII[A-Za-z0-9+\/]{3}IBADANBgkqhkiG9w0BAQEFAAS/
        // 30 82 xx xx 02 01 00 02 8[12]: PKCS#1 RSA and traditional DSA
        $pkcs1 = /MII[A-Za-z0-9+\/]{3}IBAAK[BC]/
        // 30 81 xx 02 01 00 30 1[03] 06 07 2a 86 48 ce 3d 02 01 06: PKCS#8 EC
        $pkcs8_ec = /MI[GH][A-Za-z0-9+\/]AgEAMB[AM]GByqGSM49AgEG/
        // 30 82 xx xx 02 01 00 30 82 xx xx 06 07 2a 86 48 ce 38 04 01: PKCS#8 DSA
        $pkcs8_dsa = /MII[A-Za-z0-9+\/]{3}IBADCC[A-Za-z0-9+\/]{3}GByqGSM44BAE/
        // 30 xx 02 01 0[01] 30 05 06 03 2b 65 (70|6e|71|6f): PKCS#8 Ed25519, X25519, Ed448, X448
        $pkcs8_okp = /M[A-Za-z0-9+\/]{2}CAQ[AE]wBQYDK2V[wuxv]/
        // SEC1 ECPrivateKey: P-256, secp256k1, P-384, P-521
        $sec1_p256 = "MHcCAQEEI"
        $sec1_k256 = "MHQCAQEEI"
        $sec1_p384 = "MIGkAgEBBD"
        $sec1_p521 = "MIHcAgEBBE"
    condition:
        any of them
}

rule sshcom_private_key
{
    meta:
        validator = "sshcom"
        format = "sshcom"
        severity = "high"
        description = "ssh.com / Tectia private key (puttygen -O private-sshcom), RSA or DSA, clear or 3DES-encrypted"
        selftest = "sshcom_rsa,sshcom_dsa,sshcom_encrypted"
    strings:
        $a = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
    condition:
        $a
}

rule age_secret_key
{
    meta:
        validator = "age"
        format = "age"
        severity = "high"
        description = "age identity (age-keygen, SOPS keys.txt): AGE-SECRET-KEY-1 and a bech32 X25519 key"
        selftest = "age_identity,age_identity_env"
    strings:
        $a = "AGE-SECRET-KEY-"
    condition:
        $a
}

rule minisign_secret_key
{
    meta:
        validator = "minisign"
        format = "minisign"
        severity = "high"
        description = "minisign or OpenBSD signify Ed25519 secret key file (comment line, then the key's base64), clear or passphrase-protected"
        selftest = "minisign_clear,minisign_encrypted,signify_clear,signify_encrypted"
    strings:
        // one atom for both tools (the base64 prefixes of the keys would cost three);
        // public keys and signatures share the comment, the validator reads what follows
        $c = "untrusted comment: "
    condition:
        $c
}

rule wireguard_private_key
{
    meta:
        validator = "wireguard"
        format = "wireguard"
        severity = "high"
        description = "WireGuard private key in a configuration file (wg-quick, wg setconf, systemd-networkd .netdev): a clamped X25519 key"
        selftest = "wireguard_wg_quick,wireguard_networkd"
    strings:
        $k = /PrivateKey[ \t]*=[ \t]*[A-Za-z0-9+\/]{43}=/
    condition:
        $k
}
