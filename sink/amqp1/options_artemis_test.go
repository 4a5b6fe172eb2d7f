package amqp1

import "github.com/sluiceio/sluice/internal/testserver/artemis"

// artemisOptions is the broker most tests share: auto-create on, and one
// small address ("small.*") that refuses messages once full.
func artemisOptions() artemis.Options {
	return artemis.Options{
		Users: map[string]string{adminUser: adminPass},
		AddressSettings: `<address-setting match="small.#">
        <max-size-bytes>20000</max-size-bytes>
        <address-full-policy>FAIL</address-full-policy>
      </address-setting>`,
	}
}
