//! Compact JWS signing for the two provider credentials: RS256 (FCM's service-account
//! assertion) and ES256 (APNs' provider token), with `ring` — the crypto rustls already uses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use serde_json::Value;

/// A private key that signs JWTs.
pub enum Signer {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

impl Signer {
    /// An RSA key from PEM (PKCS#8 `PRIVATE KEY`, as in a Google service-account file).
    pub fn rs256_from_pem(pem: &str) -> Result<Signer, String> {
        let der = pkcs8_der(pem)?;
        RsaKeyPair::from_pkcs8(&der).map(Signer::Rs256).map_err(|e| format!("not an RSA PKCS#8 key: {e}"))
    }

    /// A P-256 key from PEM (PKCS#8 `PRIVATE KEY`, as in an APNs `.p8` file).
    pub fn es256_from_pem(pem: &str) -> Result<Signer, String> {
        let der = pkcs8_der(pem)?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map(Signer::Es256)
            .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Rs256(_) => "RS256",
            Signer::Es256(_) => "ES256",
        }
    }

    /// `base64url(header).base64url(claims).base64url(signature)`; `alg` and `typ` are added
    /// to `header`.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<String, String> {
        header["alg"] = Value::from(self.alg());
        header["typ"] = Value::from("JWT");
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match self {
            Signer::Rs256(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, jwt.as_bytes(), &mut sig).map_err(|e| format!("RS256: {e}"))?;
                sig
            }
            // FIXED is JWS's r‖s encoding (RFC 7518 §3.4), not ASN.1.
            Signer::Es256(key) => key.sign(&rng, jwt.as_bytes()).map_err(|e| format!("ES256: {e}"))?.as_ref().to_vec(),
        };
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

fn pkcs8_der(pem: &str) -> Result<Vec<u8>, String> {
    match rustls_pemfile::private_key(&mut pem.as_bytes()) {
        Ok(Some(tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(der))) => Ok(der.secret_pkcs8_der().to_vec()),
        Ok(Some(_)) => Err("the key must be PKCS#8 (-----BEGIN PRIVATE KEY-----)".into()),
        Ok(None) => Err("no private key in the PEM text".into()),
        Err(e) => Err(format!("bad PEM: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn es256_verifies_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let signer = Signer::es256_from_pem(&pem).unwrap();
        let Signer::Es256(pair) = &signer else { unreachable!() };
        let public = pair.public_key().as_ref().to_vec();
        let jwt = signer.sign(serde_json::json!({"kid": "K"}), &serde_json::json!({"iss": "T"})).unwrap();
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public).verify(signed.as_bytes(), &sig).unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "K"}));
    }

    #[test]
    fn wrong_key_kinds_are_refused() {
        assert!(Signer::rs256_from_pem("nothing").is_err());
        assert!(Signer::es256_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }
}
