// Keys and certificates for the QUIC tests, made once per test process with certtool (gnutls-bin) in a temporary
// directory: none is committed. An Ed25519 CA; Ed25519 and ECDSA P-256 servers for localhost and a client, all
// signed by it; a second CA with a server of its own (a stranger).
#pragma once

#include <doctest/doctest.h>

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace cf::quic::test {

// A CA, certificates it signed (Ed25519 and ECDSA P-256 servers, a client), and a second CA with a server of its own.
class TestPki {
public:
    TestPki() {
        char pattern[] = "/tmp/cf-quic-tls-XXXXXX";
        const char* made = mkdtemp(pattern);
        REQUIRE_MESSAGE(made != nullptr, "mkdtemp failed");
        dir_ = made;
        write("ca.tmpl", "cn = ChronoFabric test CA\nca\ncert_signing_key\nexpiration_days = 2\n");
        write("server.tmpl", "cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\n"
                             "signing_key\nexpiration_days = 2\n");
        write("client.tmpl", "cn = client\ntls_www_client\nsigning_key\nexpiration_days = 2\n");
        authority("ca");
        authority("other-ca");
        leaf("server", "ca", "server.tmpl", "--key-type=ed25519");
        leaf("server-p256", "ca", "server.tmpl", "--key-type=ecdsa --curve=secp256r1");
        leaf("client", "ca", "client.tmpl", "--key-type=ed25519");
        leaf("stranger", "other-ca", "server.tmpl", "--key-type=ed25519");
    }
    ~TestPki() { (void)std::system(("rm -rf '" + dir_ + "'").c_str()); }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }

private:
    void write(const std::string& name, const std::string& text) {
        std::ofstream(path(name)) << text;
    }
    void run(const std::string& command) {
        const int status = std::system((command + " >>'" + path("certtool.log") + "' 2>&1").c_str());
        REQUIRE_MESSAGE(status == 0, "certtool failed (is gnutls-bin installed? toolchains/cf setup): " << command);
    }
    void authority(const std::string& name) {
        run("certtool --generate-privkey --key-type=ed25519 --outfile '" + path(name + ".key") + "'");
        run("certtool --generate-self-signed --load-privkey '" + path(name + ".key") + "' --template '" +
            path("ca.tmpl") + "' --outfile '" + path(name + ".pem") + "'");
    }
    void leaf(const std::string& name, const std::string& ca, const std::string& tmpl, const std::string& key_type) {
        run("certtool --generate-privkey " + key_type + " --outfile '" + path(name + ".key") + "'");
        run("certtool --generate-certificate --load-privkey '" + path(name + ".key") + "' --load-ca-certificate '" +
            path(ca + ".pem") + "' --load-ca-privkey '" + path(ca + ".key") + "' --template '" + path(tmpl) +
            "' --outfile '" + path(name + ".pem") + "'");
    }
    std::string dir_;
};

inline const TestPki& pki() {
    static const TestPki made;
    return made;
}

}  // namespace cf::quic::test
