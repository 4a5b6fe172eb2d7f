package kafkacluster

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluiceio/sluice/internal/testenv"
)

// Version is the Apache Kafka version the tests run; scripts/deps/kafka.sh
// fetches the same one.
const Version = "4.4.0"

// ErrMissing is wrapped by Locate when Java or the Kafka jars are missing.
var ErrMissing = errors.New("kafkacluster: missing")

// How is the hint testenv.Missing prints.
const How = "run `. scripts/deps/lib.sh; . scripts/deps/kafka.sh` (needs java 17+, javac and mvn; fetches Apache Kafka " + Version + " from Maven Central)"

// Env is what running Kafka needs: the java binaries and the jars.
type Env struct {
	Java  string
	Javac string
	Home  string // holds lib/ with the broker, client and tools jars
}

// Classpath is the jars of Home.
func (e Env) Classpath() string { return filepath.Join(e.Home, "lib", "*") }

// Locate finds Java and the jars of Version.
func Locate() (Env, error) {
	var e Env
	var err error
	if e.Java, err = exec.LookPath("java"); err != nil {
		return e, fmt.Errorf("%w: java: %w", ErrMissing, err)
	}
	if e.Javac, err = exec.LookPath("javac"); err != nil {
		return e, fmt.Errorf("%w: javac: %w", ErrMissing, err)
	}
	e.Home = os.Getenv("SLUICE_KAFKA_HOME")
	if e.Home == "" {
		e.Home = filepath.Join(testenv.CacheDir(), "kafka", Version)
	}
	jar := filepath.Join(e.Home, "lib", "kafka_2.13-"+Version+".jar")
	if _, err := os.Stat(jar); err != nil {
		return e, fmt.Errorf("%w: Apache Kafka %s jars: %w", ErrMissing, Version, err)
	}
	return e, nil
}

// Require returns the Env or ends the test with testenv.Missing.
func Require(t testing.TB) Env {
	t.Helper()
	e, err := Locate()
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("Apache Kafka %s (%v)", Version, err), How)
	}
	return e
}

//go:embed java/RefClient.java
var refClientSrc []byte

var refMu sync.Mutex

// refClientDir compiles java/RefClient.java against kafka-clients once per
// source version, into Home, and returns the directory of the class.
func (e Env) refClientDir() (string, error) {
	sum := sha256.Sum256(refClientSrc)
	dir := filepath.Join(e.Home, "refclient-"+hex.EncodeToString(sum[:8]))
	refMu.Lock()
	defer refMu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "RefClient.class")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(e.Home, "refclient-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "RefClient.java")
	if err := os.WriteFile(src, refClientSrc, 0o644); err != nil {
		return "", err
	}
	out, err := exec.Command(e.Javac, "-nowarn", "-d", filepath.Join(tmp, "classes"), "-cp", e.Classpath(), src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("javac RefClient: %w\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "classes"), dir); err != nil && !os.IsExist(err) {
		if _, serr := os.Stat(filepath.Join(dir, "RefClient.class")); serr != nil {
			return "", err
		}
	}
	return dir, nil
}
