{{/*
The calling convention of every public template of this library.

Build one dict in your pod template and pass it to each template:

  {{- $sluice := dict "root" $
        "appPorts" .Values.app.ports
        "podSecurityContext" .Values.podSecurityContext
        "appShutdownSeconds" .Values.app.shutdownSeconds
        "terminationGracePeriodSeconds" .Values.terminationGracePeriodSeconds }}

Keys:
  root                          required: the top context ($) of your chart.
  appPorts                      optional: ports of the app's containers, as numbers
                                (list 8080 9090) or as port objects with containerPort.
  appContainers                 optional: the app's container specs; their ports are
                                checked like appPorts.
  podSecurityContext            optional: the pod securityContext you render; with a
                                claim spool its fsGroup must be the agent's group.
  appShutdownSeconds            optional (default 0): seconds the app needs to stop.
  terminationGracePeriodSeconds optional (default 0 = computed): the grace period you
                                want; refused when below the minimum.
  selectorLabels                sluice.podMonitor only: labels that select your pods.
  name                          sluice.podMonitor / sluice.dashboard: object name
                                (default <release>-sluice).
*/}}

{{/*
sluice.validate checks the calling context and the values that cannot be checked by
the schema alone. It renders nothing; every public template calls it first.
*/}}
{{- define "sluice.validate" -}}
{{- if not (kindIs "map" .) -}}
{{- fail "sluice: call the sluice templates with a dict, e.g. include \"sluice.container\" (dict \"root\" $)" -}}
{{- end -}}
{{- $root := get . "root" -}}
{{- if not $root -}}
{{- fail "sluice: the dict passed to the sluice templates needs \"root\": your chart's top context ($)" -}}
{{- end -}}
{{- if not (hasKey $root.Values "sluice") -}}
{{- fail "sluice: .Values.sluice is missing; declare the dependency on the sluice library chart without an alias" -}}
{{- end -}}
{{- $v := $root.Values.sluice -}}
{{- $ingest := int $v.ports.ingest -}}
{{- $admin := int $v.ports.admin -}}
{{- if eq $ingest $admin -}}
{{- fail (printf "sluice: sluice.ports.ingest and sluice.ports.admin are both %d; give them different ports" $ingest) -}}
{{- end -}}
{{- /* Ports of the app: both listeners share the pod's network namespace. */ -}}
{{- $appPorts := list -}}
{{- range $p := (get . "appPorts" | default list) -}}
{{- if kindIs "map" $p -}}
{{- $appPorts = append $appPorts (int (required "sluice: an entry of appPorts has no containerPort" (get $p "containerPort"))) -}}
{{- else -}}
{{- $appPorts = append $appPorts (int $p) -}}
{{- end -}}
{{- end -}}
{{- range $c := (get . "appContainers" | default list) -}}
{{- range $p := (get $c "ports" | default list) -}}
{{- $appPorts = append $appPorts (int (get $p "containerPort")) -}}
{{- end -}}
{{- end -}}
{{- range $p := $appPorts -}}
{{- if eq $p $ingest -}}
{{- fail (printf "sluice: port %d is declared by the app and is also the sluice ingest port (sluice.ports.ingest); both share the pod's network, so move one of them" $p) -}}
{{- end -}}
{{- if eq $p $admin -}}
{{- fail (printf "sluice: port %d is declared by the app and is also the sluice admin port (sluice.ports.admin); both share the pod's network, so move one of them" $p) -}}
{{- end -}}
{{- end -}}
{{- /* Settings the chart derives from values must not be set twice. */ -}}
{{- $managed := dict
      "SLUICE_LISTEN" "sluice.ports.ingest"
      "SLUICE_ADMIN_LISTEN" "sluice.ports.admin"
      "SLUICE_SPOOL_DIR" "sluice.spool.mountPath"
      "SLUICE_SPOOL_MAX_BYTES" "sluice.spool.maxBytes"
      "SLUICE_SPOOL_SEGMENT_BYTES" "sluice.spool.segmentBytes"
      "SLUICE_DEADLETTER_MAX_BYTES" "sluice.spool.deadLetterMaxBytes"
      "SLUICE_DRAIN_TIMEOUT" "sluice.drain.timeoutSeconds"
      "SLUICE_DRAIN_ACCEPT" "sluice.native" -}}
{{- $seen := dict -}}
{{- range $k, $_ := $v.env -}}
{{- $name := include "sluice.envName" $k -}}
{{- if hasKey $managed $name -}}
{{- fail (printf "sluice: sluice.env.%s: %s is set by the chart; set %s instead" $k $name (get $managed $name)) -}}
{{- end -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "sluice: sluice.env sets %s twice (with and without the SLUICE_ prefix)" $name) -}}
{{- end -}}
{{- $_ := set $seen $name "sluice.env" -}}
{{- end -}}
{{- range $i, $s := $v.secretEnv -}}
{{- $name := include "sluice.envName" $s.name -}}
{{- if hasKey $managed $name -}}
{{- fail (printf "sluice: sluice.secretEnv[%d]: %s is set by the chart; set %s instead" $i $name (get $managed $name)) -}}
{{- end -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "sluice: sluice.secretEnv[%d]: %s is already set in %s" $i $name (get $seen $name)) -}}
{{- end -}}
{{- $_ := set $seen $name "sluice.secretEnv" -}}
{{- end -}}
{{- /* Sizes: each must parse, and an explicit sizeLimit or storage must hold the spool. */ -}}
{{- $min := int64 (include "sluice.spoolMinBytes" .) -}}
{{- $vol := $v.spool.volume -}}
{{- if and $vol.sizeLimit (ne $vol.type "emptyDir") -}}
{{- fail (printf "sluice: sluice.spool.volume.sizeLimit applies to an emptyDir spool only, but the volume type is %s" $vol.type) -}}
{{- end -}}
{{- if $vol.sizeLimit -}}
{{- $limit := int64 (include "sluice.bytes" (dict "value" $vol.sizeLimit "what" "sluice.spool.volume.sizeLimit")) -}}
{{- if lt $limit $min -}}
{{- fail (printf "sluice: sluice.spool.volume.sizeLimit %v is below the %s the spool may use (spool.maxBytes + 2 x spool.segmentBytes + spool.deadLetterMaxBytes + margin); the kubelet evicts a pod whose emptyDir outgrows its sizeLimit and the spool is lost. Raise it or leave it empty" $vol.sizeLimit (include "sluice.quantity" $min)) -}}
{{- end -}}
{{- end -}}
{{- if $vol.storage -}}
{{- $storage := int64 (include "sluice.bytes" (dict "value" $vol.storage "what" "sluice.spool.volume.storage")) -}}
{{- if lt $storage $min -}}
{{- fail (printf "sluice: sluice.spool.volume.storage %v is below the %s the spool may use (spool.maxBytes + 2 x spool.segmentBytes + spool.deadLetterMaxBytes + margin); raise it or leave it empty" $vol.storage (include "sluice.quantity" $min)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $vol.type "existingClaim") (not $vol.claimName) -}}
{{- fail "sluice: sluice.spool.volume.type is existingClaim; set sluice.spool.volume.claimName to the name of the PersistentVolumeClaim" -}}
{{- end -}}
{{- if and $vol.claimName (eq $vol.type "emptyDir") -}}
{{- fail (printf "sluice: sluice.spool.volume.claimName is %q but the volume type is emptyDir; set sluice.spool.volume.type to existingClaim or volumeClaimTemplate" $vol.claimName) -}}
{{- end -}}
{{- /* A claim keeps the owner of its files: the agent's group must be able to write. */ -}}
{{- if and (ne $vol.type "emptyDir") (hasKey . "podSecurityContext") -}}
{{- $psc := get . "podSecurityContext" | default dict -}}
{{- $group := int64 (dig "runAsGroup" (dig "runAsUser" 65532 $v.securityContext) $v.securityContext) -}}
{{- if not (hasKey $psc "fsGroup") -}}
{{- fail (printf "sluice: a %s spool needs fsGroup: %d in the pod securityContext, so that the agent (group %d) can write to the volume" $vol.type $group $group) -}}
{{- end -}}
{{- if ne (int64 $psc.fsGroup) $group -}}
{{- fail (printf "sluice: the pod securityContext has fsGroup: %d but the agent runs as group %d; a %s spool needs fsGroup: %d" (int64 $psc.fsGroup) $group $vol.type $group) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
sluice.envName: the full variable name of an env key, SLUICE_ added when missing.
*/}}
{{- define "sluice.envName" -}}
{{- if hasPrefix "SLUICE_" . -}}{{ . }}{{- else -}}SLUICE_{{ . }}{{- end -}}
{{- end -}}

{{/*
sluice.envValue: a value of sluice.env as the string the agent reads. Numbers stay
whole numbers (YAML numbers arrive as floats).
*/}}
{{- define "sluice.envValue" -}}
{{- if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}
