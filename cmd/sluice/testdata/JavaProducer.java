// A plain Java Kafka producer for the Kafka listener's end-to-end test:
// idempotent and acks=all (the client's defaults, set explicitly), one
// producer per compression codec, default partitioner. Prints
// "<value> <partition>" per acknowledged record; exits 1 on any error.
// With SASL_PASSWORD in the environment it authenticates with SASL/PLAIN
// (user "java", that password).
//
//   java -cp "$SLUICE_KAFKA_CLIENTS_CP" JavaProducer.java <bootstrap> <topic> <records> <codec>...
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaProducer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int n = Integer.parseInt(args[2]);
        for (int c = 3; c < args.length; c++) {
            String codec = args[c];
            Properties p = new Properties();
            p.put("bootstrap.servers", bootstrap);
            p.put("enable.idempotence", "true");
            p.put("acks", "all");
            p.put("compression.type", codec);
            p.put("linger.ms", "5");
            p.put("delivery.timeout.ms", "60000");
            p.put("key.serializer", StringSerializer.class.getName());
            p.put("value.serializer", StringSerializer.class.getName());
            String password = System.getenv("SASL_PASSWORD");
            if (password != null) {
                p.put("security.protocol", "SASL_PLAINTEXT");
                p.put("sasl.mechanism", "PLAIN");
                p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"java\" password=\"" + password + "\";");
            }
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    String v = "java-" + codec + "-" + i;
                    ProducerRecord<String, String> r = new ProducerRecord<>(topic, "key-" + (i % 37), v);
                    r.headers().add("origin", "java".getBytes());
                    acks.add(producer.send(r));
                    values.add(v);
                }
                for (int i = 0; i < n; i++) {
                    RecordMetadata md = acks.get(i).get();
                    System.out.println(values.get(i) + " " + md.partition());
                }
            }
        }
    }
}
