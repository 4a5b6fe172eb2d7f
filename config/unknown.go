package config

import (
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// serviceLinkRE matches the variables Kubernetes injects for a Service whose
// name starts with "sluice" (SLUICE_SERVICE_HOST, SLUICE_METRICS_SERVICE_PORT,
// SLUICE_SERVICE_PORT_HTTP, SLUICE_PORT, SLUICE_PORT_7101_TCP_ADDR, ...).
// A test checks that no setting of the agent has this shape.
var serviceLinkRE = regexp.MustCompile(`^SLUICE(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

func isServiceLink(name string) bool { return serviceLinkRE.MatchString(name) }

// settings lists the variable names (without prefix) read from a struct type.
func settings(t reflect.Type) []string {
	var out []string
	for _, f := range fields(t) {
		out = append(out, envName(f))
	}
	return out
}

// typeSettings maps each sink type with settings of its own to their names.
func typeSettings() map[string][]string {
	m := map[string][]string{}
	for _, t := range sinkTypes {
		m[t.name] = settings(t.spec)
	}
	return m
}

// knownNames is what the unknown-variable check knows: the core variables and
// the variables of every configured sink.
type knownNames struct {
	core     map[string]bool
	common   []string
	byType   map[string][]string
	sinks    map[string]string // name → type ("" when invalid: any setting goes)
	reserved map[string]bool
	all      []string // every concrete name, for suggestions
}

func newKnownNames(sinks map[string]string) *knownNames {
	k := &knownNames{
		core:     map[string]bool{},
		common:   settings(reflect.TypeFor[Sink]()),
		byType:   typeSettings(),
		sinks:    sinks,
		reserved: reservedNames(),
	}
	for _, s := range settings(reflect.TypeFor[Config]()) {
		k.core[envPrefix+"_"+s] = true
		k.all = append(k.all, envPrefix+"_"+s)
	}
	for _, n := range slices.Sorted(maps.Keys(sinks)) {
		for _, s := range k.sinkSettings(sinks[n]) {
			k.all = append(k.all, envPrefix+"_"+strings.ToUpper(n)+"_"+s)
		}
	}
	return k
}

// sinkSettings lists the settings a sink of type typ reads; all of them when
// typ is "" (an invalid type, reported on its own).
func (k *knownNames) sinkSettings(typ string) []string {
	out := slices.Clone(k.common)
	if typ != "" {
		return append(out, k.byType[typ]...)
	}
	for _, t := range slices.Sorted(maps.Keys(k.byType)) {
		for _, s := range k.byType[t] {
			if !slices.Contains(out, s) { // a setting several types read
				out = append(out, s)
			}
		}
	}
	return out
}

// typeOf returns the sink types that have setting s ("amqp1, http or
// nats"), or "".
func (k *knownNames) typeOf(s string) string {
	var types []string
	for _, t := range slices.Sorted(maps.Keys(k.byType)) {
		if slices.Contains(k.byType[t], s) {
			types = append(types, t)
		}
	}
	return orList(types)
}

// checkUnknown returns one error per SLUICE_* variable in environ that the
// agent does not read, sorted by name. sinks maps each configured sink name
// to its type.
func checkUnknown(environ []string, sinks map[string]string) []error {
	k := newKnownNames(sinks)
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), envPrefix+"_") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, name := range slices.Compact(names) {
		if msg := k.problem(name); msg != "" {
			errs = append(errs, &varError{name: name, msg: msg})
		}
	}
	return errs
}

// problem says what is wrong with variable name, or "" when the agent reads
// it or it is a Kubernetes service link.
func (k *knownNames) problem(name string) string {
	if upper := strings.ToUpper(name); upper != name {
		if k.problem(upper) == "" && !isServiceLink(upper) {
			return fmt.Sprintf("variable names are case-sensitive; did you mean %s?", upper)
		}
		return "unknown variable" + k.suggest(upper)
	}
	if k.core[name] || isServiceLink(name) {
		return ""
	}
	word, setting, ok := strings.Cut(strings.TrimPrefix(name, envPrefix+"_"), "_")
	sink := strings.ToLower(word)
	if !ok || k.reserved[sink] {
		return "unknown variable" + k.suggest(name)
	}
	typ, configured := k.sinks[sink]
	switch {
	case configured && slices.Contains(k.sinkSettings(typ), setting):
		return ""
	case configured && k.typeOf(setting) != "":
		return fmt.Sprintf("%s is a setting of %s sinks, but sink %q has type %s", setting, k.typeOf(setting), sink, typ)
	case configured:
		return fmt.Sprintf("unknown setting %s for sink %q (type %s)%s", setting, sink, typ, k.suggest(name))
	case slices.Contains(k.sinkSettings(""), setting):
		return fmt.Sprintf("sink %q is not in SLUICE_SINKS%s", sink, k.suggest(name))
	}
	return "unknown variable" + k.suggest(name)
}

// suggest returns "; did you mean X?" when known names are within edit
// distance 2 of name (the nearest ones), or "".
func (k *knownNames) suggest(name string) string {
	best, dist := []string(nil), 3
	for _, cand := range k.all {
		switch d := editDistance(name, cand); {
		case d < dist:
			best, dist = []string{cand}, d
		case d == dist:
			best = append(best, cand)
		}
	}
	if len(best) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(best, " or ") + "?"
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
