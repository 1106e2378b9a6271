// The QUIC benchmarks' server identity: an Ed25519 key and a self-signed certificate for "localhost", made with
// GnuTLS at start-up and written as PEM files into a temporary directory (removed again by the destructor). Our
// stack and the ngtcp2 peer load the same files, so both handshakes sign and verify the same way.
#pragma once

#include <memory>
#include <string>

#include "engine/quic/tls_context.hpp"

namespace cf::latency {

class BenchCertificate {
public:
    BenchCertificate();
    ~BenchCertificate();
    BenchCertificate(const BenchCertificate&) = delete;
    BenchCertificate& operator=(const BenchCertificate&) = delete;

    bool ok() const { return ok_; }
    std::string key_path() const { return dir_ + "/key.pem"; }
    std::string certificate_path() const { return dir_ + "/cert.pem"; }

private:
    std::string dir_;
    bool ok_ = false;
};

// Our client and server TLS contexts for the benchmarks: the server with `certificate`, the client pinning its key,
// both with ALPN "cf-bench". 0, or a negative errno with platform::last_error_message() saying why.
int make_bench_tls(const BenchCertificate& certificate, std::unique_ptr<quic::TlsContext>& client,
                   std::unique_ptr<quic::TlsContext>& server);

}  // namespace cf::latency
