package config

import (
	"reflect"
	"strings"
)

// sinkType is a sink type with settings of its own: the struct that
// declares them (one field a variable, described by its tags), how a Sink
// holds it, and the checks its values need beyond the tags.
//
// Every list of types in this package (Variables and Reference, the
// unknown-variable check, loading, Redacted) is derived from sinkTypes, so
// a type is added by declaring its struct, a field in Sink, its name in the
// enum of Sink.Type and one entry here. A setting that several types read
// (URL, WRITE_TIMEOUT, TLS_CA_FILE, ...) is declared by each of them, with
// its own description, default and validation; Variables lists it once with
// every type that reads it (see Variable.PerType).
type sinkType struct {
	name string
	spec reflect.Type
	// load reads and checks the settings of sink s (variables prefixed p)
	// into its field; owner names the sink in "required" messages.
	load func(c *checker, p, owner string, s *Sink)
	// settings returns the sink's settings struct (a pointer), or nil when
	// s is not of this type.
	settings func(s *Sink) any
}

// typeOf declares sink type name whose settings are a T held in the Sink
// field that field returns, checked by validate (nil: the tags suffice).
func typeOf[T any](name string, field func(*Sink) **T, validate func(*checker, string, *T)) sinkType {
	return sinkType{
		name: name,
		spec: reflect.TypeFor[T](),
		load: func(c *checker, p, owner string, s *Sink) {
			t := new(T)
			*field(s) = t
			c.add(process(p, t, owner))
			c.checkTags(p, t)
			if validate != nil {
				validate(c, p, t)
			}
		},
		settings: func(s *Sink) any {
			if t := *field(s); t != nil {
				return t
			}
			return nil
		},
	}
}

// Sink types, as in the enum of Sink.Type.
const (
	typeFile     = "file"
	typeKafka    = "kafka"
	typeHTTP     = "http"
	typeQueue    = "queue"
	typeRabbitMQ = "rabbitmq"
	typeAMQP1    = "amqp1"
	typeSQS      = "sqs"
	typeNATS     = "nats"
)

// sinkTypes lists the sink types with settings of their own, in the order
// of the reference table. stdout and discard have none.
var sinkTypes = []sinkType{
	typeOf(typeFile, func(s *Sink) **FileSink { return &s.File }, (*checker).validateFile),
	typeOf(typeKafka, func(s *Sink) **KafkaSink { return &s.Kafka }, (*checker).validateKafka),
	typeOf(typeHTTP, func(s *Sink) **HTTPSink { return &s.HTTP }, (*checker).validateHTTP),
	typeOf(typeQueue, func(s *Sink) **QueueSink { return &s.Queue }, (*checker).validateQueue),
	typeOf(typeRabbitMQ, func(s *Sink) **RabbitMQSink { return &s.RabbitMQ }, (*checker).validateRabbitMQ),
	typeOf(typeAMQP1, func(s *Sink) **AMQP1Sink { return &s.AMQP1 }, (*checker).validateAMQP1),
	typeOf(typeSQS, func(s *Sink) **SQSSink { return &s.SQS }, (*checker).validateSQS),
	typeOf(typeNATS, func(s *Sink) **NATSSink { return &s.NATS }, (*checker).validateNATS),
}

// findSinkType returns the declaration of type name, or nil for a type
// without settings of its own (stdout, discard) or an invalid one.
func findSinkType(name string) *sinkType {
	for i := range sinkTypes {
		if sinkTypes[i].name == name {
			return &sinkTypes[i]
		}
	}
	return nil
}

// typeNames lists the valid values of SLUICE_<NAME>_TYPE, from the enum tag
// of Sink.Type.
func typeNames() []string {
	f, _ := reflect.TypeFor[Sink]().FieldByName("Type")
	return strings.Split(f.Tag.Get("enum"), "|")
}

// orList writes names as "a", "a or b", "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
