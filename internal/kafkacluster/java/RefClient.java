// RefClient is the reference Java client of the real-Kafka tests: the
// Apache Kafka client (kafka-clients) reading and writing the same topics as
// sluice, so that what sluice sends is checked by the client most Kafka
// users run. The tests compile it with javac against kafka-clients.
//
//	consume BOOTSTRAP TOPIC      every record of TOPIC from the beginning to
//	                             the end offsets at start, one line each:
//	                             partition offset key value headers
//	                             (hex; "-" = null; headers name:value,...)
//	partition BOOTSTRAP TOPIC    reads keys (one per line) on stdin, produces
//	                             each with the default partitioner and
//	                             acks=all, prints "key<TAB>partition"
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class RefClient {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: RefClient consume|partition BOOTSTRAP TOPIC");
            System.exit(2);
        }
        switch (args[0]) {
            case "consume" -> consume(args[1], args[2]);
            case "partition" -> partition(args[1], args[2]);
            default -> {
                System.err.println("unknown mode " + args[0]);
                System.exit(2);
            }
        }
    }

    static String hex(byte[] b) {
        if (b == null) return "-";
        StringBuilder sb = new StringBuilder(b.length * 2 + 1);
        sb.append('x');
        for (byte x : b) sb.append(String.format("%02x", x));
        return sb.toString();
    }

    static void consume(String bootstrap, String topic) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", "read_uncommitted");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30))) {
                tps.add(new TopicPartition(topic, pi.partition()));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = new HashMap<>(c.endOffsets(tps, Duration.ofSeconds(30)));
            StringBuilder out = new StringBuilder();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp)) done = false;
                }
                if (done) break;
                if (System.nanoTime() > deadline) {
                    System.err.println("end offsets not reached in 60 s");
                    System.exit(1);
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    if (r.offset() >= end.get(new TopicPartition(r.topic(), r.partition()))) continue;
                    out.append(r.partition()).append(' ').append(r.offset()).append(' ')
                       .append(hex(r.key())).append(' ').append(hex(r.value())).append(' ');
                    boolean first = true;
                    for (Header h : r.headers()) {
                        if (!first) out.append(',');
                        first = false;
                        out.append(hex(h.key().getBytes(StandardCharsets.UTF_8))).append(':').append(hex(h.value()));
                    }
                    if (first) out.append('-');
                    out.append('\n');
                }
                System.out.print(out);
                out.setLength(0);
            }
        }
        System.out.flush();
    }

    static void partition(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        p.put("acks", "all");
        List<String> keys = new ArrayList<>();
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> pr = new KafkaProducer<>(p)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String k; (k = in.readLine()) != null; ) {
                keys.add(k);
                fs.add(pr.send(new ProducerRecord<>(topic, k.getBytes(StandardCharsets.UTF_8), new byte[] {'x'})));
            }
            pr.flush();
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < keys.size(); i++) {
                out.append(keys.get(i)).append('\t').append(fs.get(i).get().partition()).append('\n');
            }
            System.out.print(out);
        }
    }
}
