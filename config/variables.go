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
// from the struct tags of Config, Sink and the settings struct of each sink
// type (see sinkTypes). A setting that several types read (URL,
// WRITE_TIMEOUT, ...) is one Variable that lists every such type, and keeps
// each type's own text in PerType.
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
	// PerType is set when several sink types read the variable (URL,
	// WRITE_TIMEOUT, ...): one entry per type, in SinkTypes order, with that
	// type's own default, description and example. The Variable itself then
	// holds them all: the descriptions, each prefixed by the types that give
	// it (one alone when all agree), the defaults (one, or each with its
	// types), the first example; Secret and Required when any type says so.
	PerType []Variable
}

// Variables lists every variable the agent knows: the core ones, then the
// per-sink ones common to all types, then those of each type.
func Variables() []Variable {
	vars := variablesOf(reflect.TypeFor[Config](), envPrefix, nil)
	p := envPrefix + "_" + sinkPlaceholder
	vars = append(vars, variablesOf(reflect.TypeFor[Sink](), p, nil)...)
	for _, t := range sinkTypes {
		vars = mergeShared(vars, variablesOf(t.spec, p, []string{t.name}))
	}
	return vars
}

// mergeShared appends the variables of one sink type to vars; a name
// another type reads already becomes one Variable for both (see
// Variable.PerType).
func mergeShared(vars, add []Variable) []Variable {
	for _, a := range add {
		i := slices.IndexFunc(vars, func(v Variable) bool { return v.Name == a.Name })
		if i < 0 || vars[i].SinkTypes == nil {
			vars = append(vars, a)
			continue
		}
		v := &vars[i]
		if v.PerType == nil {
			first := *v
			first.SinkTypes = slices.Clone(v.SinkTypes)
			v.PerType = []Variable{first}
		}
		v.PerType = append(v.PerType, a)
		v.SinkTypes = append(slices.Clone(v.SinkTypes), a.SinkTypes...)
		v.Secret = v.Secret || a.Secret
		v.Required = v.Required || a.Required
		v.Description, v.Default = perTypeText(v.PerType)
	}
	return vars
}

// perTypeText writes the description and default of a variable several
// types read. Types that describe it alike share one part ("kafka, nats:
// PEM private key of TLS_CERT_FILE."); a description all types share
// stands alone. The default is the common one, else each with its types.
func perTypeText(per []Variable) (desc, def string) {
	group := func(key func(Variable) string) (keys []string, types map[string][]string) {
		types = map[string][]string{}
		for _, pt := range per {
			k := key(pt)
			if _, ok := types[k]; !ok {
				keys = append(keys, k)
			}
			types[k] = append(types[k], pt.SinkTypes...)
		}
		return keys, types
	}
	descs, descTypes := group(func(v Variable) string { return v.Description })
	if len(descs) == 1 {
		desc = descs[0]
	} else {
		var parts []string
		for _, d := range descs {
			parts = append(parts, strings.Join(descTypes[d], ", ")+": "+d)
		}
		desc = strings.Join(parts, " ")
	}
	defs, defTypes := group(func(v Variable) string { return v.Default })
	if len(defs) == 1 {
		return desc, defs[0]
	}
	var parts []string
	for _, d := range defs {
		if d != "" {
			parts = append(parts, d+" ("+strings.Join(defTypes[d], ", ")+")")
		}
	}
	return desc, strings.Join(parts, ", ")
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
		if v.SinkTypes != nil {
			desc = "(" + strings.Join(v.SinkTypes, ", ") + ") " + desc
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
		for _, t := range sinkTypes {
			if spec := t.settings(s); spec != nil {
				lines = appendRedacted(lines, p, spec)
			}
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
