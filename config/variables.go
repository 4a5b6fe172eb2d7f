package config

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// sinkPlaceholder stands for a sink's name in Variable.Name and
// Variable.Default.
const sinkPlaceholder = "<NAME>"

// Variable describes one environment variable the agent reads. It is derived
// from the struct tags of Config, Sink, FileSink, KafkaSink, HTTPSink and
// NATSSink. A setting that several types read (URL, TLS_CA_FILE, ...) has one
// Variable per type.
type Variable struct {
	// Name is the variable name; per-sink variables are written with the
	// placeholder <NAME>: "SLUICE_<NAME>_BROKERS".
	Name string
	// Default is the value used when the variable is unset or empty; "" when
	// there is none. "<name>" (for SLUICE_<NAME>_TYPE) is the sink's name.
	Default     string
	Description string
	// Example is a valid value.
	Example string
	// Secret variables are never printed by Redacted.
	Secret bool
	// Required variables must be set (for the sink types in SinkTypes).
	Required bool
	// SinkTypes lists the sink types that read a per-sink variable; nil for
	// core variables and for per-sink variables that every type reads.
	SinkTypes []string

	// labelled: Description names the type of each of its parts, because
	// the types that read the variable describe it differently.
	labelled bool
}

// Variables lists every variable the agent knows: the core ones, then the
// per-sink ones common to all types, then those of each type.
func Variables() []Variable {
	return mergeByName(variablesByType())
}

// variablesByType is Variables before mergeByName: a setting that several
// types read appears once per type, with that type's description and
// example.
func variablesByType() []Variable {
	vars := variablesOf(reflect.TypeFor[Config](), envPrefix, nil)
	p := envPrefix + "_" + sinkPlaceholder
	vars = append(vars, variablesOf(reflect.TypeFor[Sink](), p, nil)...)
	vars = append(vars, variablesOf(reflect.TypeFor[FileSink](), p, []string{typeFile})...)
	vars = append(vars, variablesOf(reflect.TypeFor[KafkaSink](), p, []string{typeKafka})...)
	vars = append(vars, variablesOf(reflect.TypeFor[HTTPSink](), p, []string{typeHTTP})...)
	vars = append(vars, variablesOf(reflect.TypeFor[NATSSink](), p, []string{typeNATS})...)
	return vars
}

// mergeByName folds the variables that several sink types read (URL,
// TLS_CA_FILE, ...) into one, listing every type in SinkTypes. Where the
// types describe it differently, the description has one part per type,
// each labelled with its type. Default, Required and Secret are those of
// the first type; a test checks that the types agree on them.
func mergeByName(vars []Variable) []Variable {
	out := make([]Variable, 0, len(vars))
	at := make(map[string]int, len(vars))
	for _, v := range vars {
		i, seen := at[v.Name]
		if !seen {
			at[v.Name] = len(out)
			out = append(out, v)
			continue
		}
		m := &out[i]
		if m.labelled || m.Description != v.Description {
			if !m.labelled {
				m.Description = typeLabel(m.SinkTypes) + m.Description
				m.labelled = true
			}
			m.Description += " " + typeLabel(v.SinkTypes) + v.Description
		}
		m.SinkTypes = append(m.SinkTypes, v.SinkTypes...)
	}
	return out
}

// typeLabel is the "(kafka, nats) " prefix of a description.
func typeLabel(types []string) string {
	return "(" + strings.Join(types, ", ") + ") "
}

func variablesOf(t reflect.Type, prefix string, types []string) []Variable {
	var out []Variable
	for _, f := range fields(t) {
		def, ok := f.Tag.Lookup("doc_default")
		if !ok {
			def = f.Tag.Get("default")
		}
		desc := f.Tag.Get("desc")
		if allowed, ok := f.Tag.Lookup("enum"); ok {
			desc += " " + strings.ToUpper(enumText(allowed)[:1]) + enumText(allowed)[1:] + "."
		}
		out = append(out, Variable{
			Name:        prefix + "_" + envName(f),
			Default:     def,
			Description: desc,
			Example:     f.Tag.Get("example"),
			Secret:      isTrue(f.Tag.Get("secret")),
			Required:    isTrue(f.Tag.Get("required")),
			SinkTypes:   slices.Clone(types),
		})
	}
	return out
}

// Reference returns a markdown table of Variables (variable | default |
// example | description), for the README.
func Reference() string {
	var b strings.Builder
	b.WriteString("| variable | default | example | description |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, v := range Variables() {
		def := code(v.Default)
		if v.Required {
			def = "*required*"
		}
		desc := v.Description
		if v.SinkTypes != nil && !v.labelled {
			desc = typeLabel(v.SinkTypes) + desc
		}
		if v.Secret {
			desc += " Secret: never printed."
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(v.Name), def, code(v.Example), cell(desc))
	}
	return b.String()
}

// code writes s as inline code in a table cell, or nothing when s is empty.
func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) + "`"
}

// cell escapes text for a markdown table cell: '|' would end the cell, and
// "<NAME>" would be taken for an HTML tag.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// redactedValue is what Redacted prints for a secret.
const redactedValue = "<redacted>"

// Redacted returns the effective configuration, one SLUICE_X=value line per
// variable (sinks included), sorted. Secrets are printed as <redacted> (empty
// ones as empty) and a password in a URL as "xxxxx". Values with spaces,
// quotes or control characters are quoted Go-style.
func (c *Config) Redacted() string {
	var lines []string
	lines = appendRedacted(lines, envPrefix, c)
	for i := range c.SinkConfigs {
		s := &c.SinkConfigs[i]
		p := envPrefix + "_" + strings.ToUpper(s.Name)
		lines = appendRedacted(lines, p, s)
		switch {
		case s.File != nil:
			lines = appendRedacted(lines, p, s.File)
		case s.Kafka != nil:
			lines = appendRedacted(lines, p, s.Kafka)
		case s.HTTP != nil:
			lines = appendRedacted(lines, p, s.HTTP)
		case s.NATS != nil:
			lines = appendRedacted(lines, p, s.NATS)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func appendRedacted(lines []string, prefix string, spec any) []string {
	v := reflect.ValueOf(spec).Elem()
	for _, f := range fields(v.Type()) {
		value := formatValue(v.FieldByIndex(f.Index))
		switch f.Tag.Get("secret") {
		case "true":
			if value != "" {
				value = redactedValue
			}
		case "userinfo":
			value = redactURLs(value)
		}
		if strings.ContainsAny(value, " \t\"'\\") || strconv.Quote(value) != `"`+value+`"` {
			value = strconv.Quote(value)
		}
		lines = append(lines, prefix+"_"+envName(f)+"="+value)
	}
	return lines
}

// redactURLs hides the credentials in a URL or a comma list of URLs: a
// password, or a user name given alone, which is a token
// (nats://token@host). A part that does not parse but holds '@' is
// replaced as a whole.
func redactURLs(value string) string {
	parts := strings.Split(value, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			if strings.Contains(p, "@") {
				parts[i] = redactedValue
			}
		case u.User == nil:
		default:
			if _, ok := u.User.Password(); ok {
				parts[i] = u.Redacted()
			} else {
				u.User = url.User("xxxxx")
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}

// formatValue writes a field value in the form the variable is read.
func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case fmt.Stringer: // Bytes, List, Map, time.Duration
		return x.String()
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	}
	panic(fmt.Sprintf("config: no format for %s", v.Type()))
}
