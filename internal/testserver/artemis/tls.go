package artemis

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// keystorePassword protects the test keystore; it guards nothing.
const keystorePassword = "sluice-test"

// writeKeystore creates a self-signed certificate for 127.0.0.1 and
// localhost with the JDK's keytool: a PKCS12 keystore for the broker and
// the certificate in PEM for clients (it is its own CA). It returns the
// paths of both.
func writeKeystore(dir string) (keystore, caPEM string, err error) {
	keystore = filepath.Join(dir, "etc", "broker.p12")
	caPEM = filepath.Join(dir, "etc", "broker-ca.pem")
	// Written again when a start is retried on other ports: keytool will
	// not add an alias the keystore already has.
	for _, f := range []string{keystore, caPEM} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return "", "", err
		}
	}
	gen := exec.Command("keytool", "-genkeypair", "-alias", "broker", "-keyalg", "EC", "-groupname", "secp256r1",
		"-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", "2",
		"-storetype", "PKCS12", "-keystore", keystore, "-storepass", keystorePassword, "-keypass", keystorePassword)
	if out, err := gen.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("keytool -genkeypair: %v: %s", err, out)
	}
	export := exec.Command("keytool", "-exportcert", "-rfc", "-alias", "broker",
		"-keystore", keystore, "-storepass", keystorePassword, "-file", caPEM)
	if out, err := export.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("keytool -exportcert: %v: %s", err, out)
	}
	if _, err := os.Stat(caPEM); err != nil {
		return "", "", err
	}
	return keystore, caPEM, nil
}
