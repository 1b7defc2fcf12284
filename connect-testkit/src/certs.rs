//! Certificates for TLS tests, minted at run time: a CA, a server certificate for `localhost` and
//! `127.0.0.1`, and a client certificate, all signed by the CA.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// DER-encoded test certificates and PKCS#8 keys.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA that signed both certificates: the trust root of both sides.
    pub ca: Vec<u8>,
    /// The server's certificate (`localhost`, `127.0.0.1`).
    pub server_cert: Vec<u8>,
    /// The server's key.
    pub server_key: Vec<u8>,
    /// The client's certificate (common name `testkit-client`).
    pub client_cert: Vec<u8>,
    /// The client's key.
    pub client_key: Vec<u8>,
}

/// The common name of the client certificate.
pub const CLIENT_NAME: &str = "testkit-client";

impl TestCerts {
    /// The certificates of this process (minted once).
    pub fn get() -> &'static TestCerts {
        static CERTS: OnceLock<TestCerts> = OnceLock::new();
        CERTS.get_or_init(|| TestCerts::mint().expect("rcgen mints test certificates"))
    }

    fn mint() -> Result<TestCerts, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = name("testkit CA");
        let ca = ca_params.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        server_params.distinguished_name = name("localhost");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name = name(CLIENT_NAME);
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca, &ca_key)?;

        Ok(TestCerts {
            ca: ca.der().to_vec(),
            server_cert: server.der().to_vec(),
            server_key: server_key.serialize_der(),
            client_cert: client.der().to_vec(),
            client_key: client_key.serialize_der(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}
