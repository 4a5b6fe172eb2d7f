package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// varError is one problem with one variable: "SLUICE_X: message".
type varError struct {
	name string
	msg  string
}

func (e *varError) Error() string { return e.name + ": " + e.msg }

// checker collects at most one error per variable, so a value that failed to
// parse is not reported a second time by a rule that saw its zero value.
type checker struct {
	errs   []error
	failed map[string]bool
}

func newChecker() *checker { return &checker{failed: map[string]bool{}} }

// fail records a problem with variable name unless one is recorded already.
func (c *checker) fail(name, format string, args ...any) {
	if c.failed[name] {
		return
	}
	c.failed[name] = true
	c.errs = append(c.errs, &varError{name: name, msg: fmt.Sprintf(format, args...)})
}

// ok reports whether none of the named variables has failed, so that a rule
// comparing two of them runs only on values that were read.
func (c *checker) ok(names ...string) bool {
	for _, n := range names {
		if c.failed[n] {
			return false
		}
	}
	return true
}

// add records errors returned by process.
func (c *checker) add(errs []error) {
	for _, err := range errs {
		var ve *varError
		if errors.As(err, &ve) {
			c.fail(ve.name, "%s", ve.msg)
			continue
		}
		c.errs = append(c.errs, err)
	}
}

// unsetEmpty removes SLUICE_* variables whose value is empty, so that
// envconfig applies the default (it would otherwise use the empty string).
func unsetEmpty() {
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if value == "" && strings.HasPrefix(name, envPrefix+"_") {
			os.Unsetenv(name)
		}
	}
}

// load builds the configuration from the process environment; environ is the
// environment as seen by the unknown-variable check.
func load(environ []string) (*Config, error) {
	ck := newChecker()
	c := &Config{}
	ck.add(process(envPrefix, c, ""))
	ck.validateCore(c)
	types := ck.loadSinks(c)
	ck.errs = append(ck.errs, checkUnknown(environ, types)...)
	if len(ck.errs) > 0 {
		return nil, errors.Join(ck.errs...)
	}
	return c, nil
}

// process fills the exported, non-ignored fields of spec (a pointer to a
// struct) from the variables <prefix>_<FIELD>. envconfig stops at the first bad
// variable, so each field is handed to envconfig.Process on its own, in a
// one-field struct with the same name, type and tags: every bad variable is
// reported. owner says, for a required variable, what requires it.
func process(prefix string, spec any, owner string) []error {
	v := reflect.ValueOf(spec).Elem()
	var errs []error
	for _, f := range fields(v.Type()) {
		name := prefix + "_" + envName(f)
		if isTrue(f.Tag.Get("required")) {
			if _, set := os.LookupEnv(name); !set {
				errs = append(errs, &varError{name: name, msg: "required for " + owner})
				continue
			}
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		if err := envconfig.Process(prefix, one.Interface()); err != nil {
			errs = append(errs, decodeError(name, f, err))
			continue
		}
		v.FieldByIndex(f.Index).Set(one.Elem().Field(0))
	}
	return errs
}

var durationType = reflect.TypeFor[time.Duration]()

// decodeError turns an envconfig error into one line naming the variable.
// The value of a secret is never part of the message.
func decodeError(name string, f reflect.StructField, err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return &varError{name: name, msg: err.Error()}
	}
	typ := f.Type
	var msg string
	switch {
	case f.Tag.Get("secret") != "":
		msg = "cannot be read (the value is secret and not shown)"
		if typ == reflect.TypeFor[Map]() {
			msg = "must be a comma list of Name=value without repeated names (the value is secret and not shown)"
		}
	case typ == durationType:
		msg = fmt.Sprintf("must be a duration such as 300ms, 10s or 1m30s, got %q", pe.Value)
	case typ.Kind() == reflect.Bool:
		msg = fmt.Sprintf("must be true or false, got %q", pe.Value)
	case typ.Kind() == reflect.Int:
		msg = fmt.Sprintf("must be a whole number, got %q", pe.Value)
	default: // this package's Decoders write complete messages
		msg = pe.Err.Error()
	}
	return &varError{name: name, msg: msg}
}

// fields lists the struct fields that are read from the environment.
func fields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && !isTrue(f.Tag.Get("ignored")) {
			out = append(out, f)
		}
	}
	return out
}

// The word splitting of envconfig's split_words, so that Variables and the
// unknown-variable check name exactly what envconfig reads (a test compares
// the two).
var (
	wordRE    = regexp.MustCompile("([^A-Z]+|[A-Z]+[^A-Z]+|[A-Z]+)")
	acronymRE = regexp.MustCompile("([A-Z]+)([A-Z][^A-Z]+)")
)

// envName is the variable name of field f without the prefix: "SPOOL_DIR"
// for SpoolDir.
func envName(f reflect.StructField) string {
	if !isTrue(f.Tag.Get("split_words")) {
		return strings.ToUpper(f.Name)
	}
	var words []string
	for _, w := range wordRE.FindAllString(f.Name, -1) {
		if m := acronymRE.FindStringSubmatch(w); m != nil {
			words = append(words, m[1], m[2])
		} else {
			words = append(words, w)
		}
	}
	return strings.ToUpper(strings.Join(words, "_"))
}

func isTrue(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}
