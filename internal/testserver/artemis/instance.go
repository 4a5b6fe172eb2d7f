package artemis

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// brokerXML is the instance's broker.xml. Placeholders: {{PORT}}, {{AUTOCREATE}},
// {{ADDRESS_SETTINGS}}, {{ADDRESSES}}, {{ACCEPTOR_EXTRA}}.
const brokerXML = `<?xml version="1.0"?>
<configuration xmlns="urn:activemq" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <core xmlns="urn:activemq:core">
    <name>sluice-test</name>
    <persistence-enabled>true</persistence-enabled>
    <journal-type>NIO</journal-type>
    <journal-datasync>true</journal-datasync>
    <journal-sync-transactional>true</journal-sync-transactional>
    <journal-sync-non-transactional>true</journal-sync-non-transactional>
    <journal-buffer-timeout>500000</journal-buffer-timeout>
    <journal-file-size>2M</journal-file-size>
    <journal-min-files>2</journal-min-files>
    <journal-pool-files>4</journal-pool-files>
    <paging-directory>data/paging</paging-directory>
    <bindings-directory>data/bindings</bindings-directory>
    <journal-directory>data/journal</journal-directory>
    <large-messages-directory>data/large-messages</large-messages-directory>
    <disk-scan-period>5000</disk-scan-period>
    <max-disk-usage>100</max-disk-usage>
    <critical-analyzer>false</critical-analyzer>
    <security-invalidation-interval>0</security-invalidation-interval>
    <acceptors>
      <acceptor name="amqp">tcp://127.0.0.1:{{PORT}}?protocols=AMQP;amqpCredits=1000;amqpLowCredits=300;amqpMinLargeMessageSize=102400;amqpDuplicateDetection=true{{ACCEPTOR_EXTRA}}</acceptor>
{{TLS_ACCEPTOR}}
    </acceptors>
    <security-settings>
      <security-setting match="#">
        <permission type="createNonDurableQueue" roles="amq"/>
        <permission type="deleteNonDurableQueue" roles="amq"/>
        <permission type="createDurableQueue" roles="amq"/>
        <permission type="deleteDurableQueue" roles="amq"/>
        <permission type="createAddress" roles="amq"/>
        <permission type="deleteAddress" roles="amq"/>
        <permission type="consume" roles="amq"/>
        <permission type="browse" roles="amq"/>
        <permission type="send" roles="amq"/>
        <permission type="manage" roles="amq"/>
      </security-setting>
    </security-settings>
    <address-settings>
{{ADDRESS_SETTINGS}}
      <address-setting match="#">
        <dead-letter-address>DLQ</dead-letter-address>
        <expiry-address>ExpiryQueue</expiry-address>
        <address-full-policy>PAGE</address-full-policy>
        <auto-create-queues>{{AUTOCREATE}}</auto-create-queues>
        <auto-create-addresses>{{AUTOCREATE}}</auto-create-addresses>
        <auto-delete-queues>false</auto-delete-queues>
        <auto-delete-addresses>false</auto-delete-addresses>
        <page-size-bytes>1M</page-size-bytes>
        <max-size-bytes>-1</max-size-bytes>
      </address-setting>
    </address-settings>
    <addresses>
      <address name="DLQ"><anycast><queue name="DLQ"/></anycast></address>
      <address name="ExpiryQueue"><anycast><queue name="ExpiryQueue"/></anycast></address>
{{ADDRESSES}}
    </addresses>
  </core>
</configuration>
`

const bootstrapXML = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<broker xmlns="http://activemq.apache.org/schema">
  <jaas-security domain="activemq"/>
  <server configuration="file:%s"/>
</broker>
`

// managementXML: no JMX connector; management goes through the broker's
// management address (activemq.management), as Manage does.
const managementXML = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<management-context xmlns="http://activemq.apache.org/schema">
  <authorisation>
    <allowlist><entry domain="hawtio"/></allowlist>
    <default-access><access method="*" roles="amq"/></default-access>
    <role-access>
      <match domain="org.apache.activemq.artemis"><access method="*" roles="amq"/></match>
    </role-access>
  </authorisation>
</management-context>
`

// loginConfig is the JAAS configuration; %t is whether the login module
// reloads its users file when it changes (Options.StaticUsers).
const loginConfig = `activemq {
   org.apache.activemq.artemis.spi.core.security.jaas.PropertiesLoginModule required
       debug=false
       reload=%t
       org.apache.activemq.jaas.properties.user="artemis-users.properties"
       org.apache.activemq.jaas.properties.role="artemis-roles.properties";
};
`

// log4j2 to the console (the broker's log file here), INFO for the broker's
// own lines (acceptor started, server live, connection failures).
const log4j2 = `rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
logger.activemq.name = org.apache.activemq.artemis.core.server
logger.activemq.level = INFO
logger.protocol.name = org.apache.activemq.artemis.protocol.amqp
logger.protocol.level = INFO
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d %-5level [%logger] %msg%n
`

// writeInstance lays out the broker instance under dir; with a tlsPort it
// also creates a keystore and sets *caFile to the PEM that verifies it.
func writeInstance(dir string, port, tlsPort int, o Options, caFile *string) error {
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{etc, filepath.Join(dir, "data"), filepath.Join(dir, "tmp"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	tlsAcceptor := ""
	if tlsPort != 0 {
		ks, ca, err := writeKeystore(dir)
		if err != nil {
			return err
		}
		*caFile = ca
		tlsAcceptor = fmt.Sprintf(`      <acceptor name="amqps">tcp://127.0.0.1:%d?protocols=AMQP;sslEnabled=true;keyStorePath=%s;keyStorePassword=%s;keyStoreType=PKCS12;amqpCredits=1000;amqpLowCredits=300</acceptor>`,
			tlsPort, ks, keystorePassword)
	}
	auto := "true"
	if o.NoAutoCreate {
		auto = "false"
	}
	x := strings.NewReplacer(
		"{{PORT}}", fmt.Sprint(port),
		"{{AUTOCREATE}}", auto,
		"{{ADDRESS_SETTINGS}}", o.AddressSettings,
		"{{ADDRESSES}}", o.Addresses,
		"{{ACCEPTOR_EXTRA}}", o.AcceptorParams,
		"{{TLS_ACCEPTOR}}", tlsAcceptor,
	).Replace(brokerXML)
	files := map[string]string{
		"broker.xml":        x,
		"bootstrap.xml":     fmt.Sprintf(bootstrapXML, filepath.Join(etc, "broker.xml")),
		"login.config":      fmt.Sprintf(loginConfig, !o.StaticUsers),
		"management.xml":    managementXML,
		"log4j2.properties": log4j2,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return writeUsers(etc, o.Users, nil)
}

// writeUsers writes the JAAS users and roles files: every user not in
// revoked has role amq (all permissions). The login module reloads them
// when they change.
func writeUsers(etc string, users map[string]string, revoked map[string]bool) error {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var ub strings.Builder
	for _, u := range names {
		fmt.Fprintf(&ub, "%s = %s\n", u, users[u])
	}
	var members []string
	for _, u := range names {
		if !revoked[u] {
			members = append(members, u)
		}
	}
	roles := "amq = " + strings.Join(members, ",") + "\n"
	// Write the roles first: a user the users file lists must have its
	// role when the module reloads.
	if err := atomicWrite(filepath.Join(etc, "artemis-roles.properties"), roles); err != nil {
		return err
	}
	return atomicWrite(filepath.Join(etc, "artemis-users.properties"), ub.String())
}

func atomicWrite(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
