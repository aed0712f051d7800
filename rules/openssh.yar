// OpenSSH's own private key format, decoded: what "-----BEGIN OPENSSH PRIVATE KEY-----" armours,
// and what a process holds in memory while it reads one.

rule openssh_key_v1
{
    meta:
        validator = "openssh_binary"
        format = "openssh-key-v1"
        severity = "high"
        description = "openssh-key-v1 binary private key (unencrypted or bcrypt-encrypted)"
        selftest = "openssh_ed25519,openssh_rsa,openssh_ecdsa"
    strings:
        // "openssh-key-v1\0" then the ciphername length, whose high bytes are zero
        $k = { 6F 70 65 6E 73 73 68 2D 6B 65 79 2D 76 31 00 00 00 00 }
    condition:
        $k
}
