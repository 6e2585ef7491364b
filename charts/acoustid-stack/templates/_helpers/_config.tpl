{{/* acoustid.conf and the credentials that reach it as *_FILE secrets. */}}

{{/* Comma-separated shard URLs; their order is the client's hash ring, so never reorder. */}}
{{- define "acoustid.indexShards" -}}
{{- $root := . -}}
{{- $urls := list -}}
{{- range $shard := until (int .Values.index.shards) -}}
{{- $host := include "acoustid.indexShardName" (dict "root" $root "shard" $shard) -}}
{{- $urls = append $urls (printf "http://%s.%s.svc:6081" $host $root.Release.Namespace) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/*
Credentials in use, as YAML: name -> {file, env, secret, key} (the Sentry DSN only ever from
sentry.existingSecret). Each is mounted as a file under
/etc/acoustid/secrets and named by ACOUSTID_<SECTION>_<KEY>_FILE; no secret is ever in env or
in the ConfigMap. `hook: true` points chart-managed ones at the hook copy of the Secret.
*/}}
{{- define "acoustid.credentials" -}}
{{- $root := .root -}}
{{- $chartSecret := printf "%s%s" (include "acoustid.fullname" $root) (ternary "-migrations" "" (default false .hook)) -}}
{{- $all := dict
  "database-password" (list $root.Values.database.auth "ACOUSTID_DATABASE_PASSWORD_FILE")
  "redis-password" (list $root.Values.redis.auth "ACOUSTID_REDIS_PASSWORD_FILE")
  "nats-password" (list $root.Values.nats.auth "ACOUSTID_NATS_PASSWORD_FILE")
  "website-secret" (list $root.Values.website.auth "ACOUSTID_WEBSITE_SECRET_FILE")
  "sentry-dsn" (list $root.Values.sentry "ACOUSTID_SENTRY_DSN_FILE") -}}
{{- range $file, $spec := $all }}
{{- $auth := index $spec 0 }}
{{- if $auth.existingSecret }}
{{ $file }}: {env: {{ index $spec 1 }}, secret: {{ $auth.existingSecret | quote }}, key: {{ $auth.existingSecretKey | quote }}}
{{- else if $auth.password }}
{{ $file }}: {env: {{ index $spec 1 }}, secret: {{ $chartSecret | quote }}, key: {{ $file }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* Data of the chart-managed Secret: only passwords given in plain values. */}}
{{- define "acoustid.secretData" -}}
{{- $all := dict "database-password" .Values.database.auth "redis-password" .Values.redis.auth "nats-password" .Values.nats.auth "website-secret" .Values.website.auth -}}
{{- range $file, $auth := $all }}
{{- if and $auth.password (not $auth.existingSecret) }}
{{ $file }}: {{ $auth.password | b64enc | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The chart's own settings as section -> key -> value. */}}
{{- define "acoustid.confSectionsWithoutExtra" -}}
{{- $v := .Values -}}
{{- $conf := dict -}}
{{- $_ := set $conf "database" (dict "host" $v.database.host "port" $v.database.port "user" $v.database.user) -}}
{{- range $db := list "app" "fingerprint" "ingest" -}}
{{- $_ := set $conf (printf "database.%s" $db) (dict "name" (index $v.database.names $db)) -}}
{{- if $v.database.readOnlyHost -}}
{{- $_ := set $conf (printf "database.%s.ro" $db) (dict "host" $v.database.readOnlyHost) -}}
{{- end -}}
{{- end -}}
{{- $redis := dict "host" (default "127.0.0.1" $v.redis.host) "port" $v.redis.port -}}
{{- if $v.redis.sentinels -}}
{{- $_ := set $redis "sentinels" (join "," $v.redis.sentinels) -}}
{{- $_ := set $redis "sentinel_master" $v.redis.sentinelMaster -}}
{{- end -}}
{{- $_ := set $conf "redis" $redis -}}
{{- $nats := dict "servers" (join "," $v.nats.servers) "replicas" $v.nats.streamReplicas -}}
{{- if $v.nats.user -}}
{{- $_ := set $nats "user" $v.nats.user -}}
{{- end -}}
{{- $_ := set $conf "nats" $nats -}}
{{- $_ := set $conf "index" (dict "shards" (include "acoustid.indexShards" .) "name" $v.index.name) -}}
{{- $_ := set $conf "logging" (dict "level" $v.config.logLevel) -}}
{{- $_ := set $conf "api" (dict "host" "0.0.0.0" "port" 5000 "workers" $v.api.workers "trusted_proxies" (join "," $v.api.trustedProxies) "limit_concurrency" $v.api.limitConcurrency "timeout_keep_alive" $v.api.timeoutKeepAlive) -}}
{{- $web := dict "host" "0.0.0.0" "port" 5001 "workers" $v.web.workers "trusted_proxies" (join "," $v.web.trustedProxies) "limit_concurrency" $v.web.limitConcurrency "timeout_keep_alive" $v.web.timeoutKeepAlive "apikeys_per_hour" $v.web.apikeysPerHour "status_cache_seconds" $v.web.statusCacheSeconds -}}
{{- /* the Ingress serves the api on the website's host: the pages link to its docs there */ -}}
{{- if $v.ingress.enabled -}}
{{- $_ := set $web "api_url" (printf "%s://%s" (ternary "https" "http" (not (empty $v.ingress.tlsSecret))) $v.ingress.host) -}}
{{- end -}}
{{- $_ := set $conf "web" $web -}}
{{- if $v.config.baseUrl -}}
{{- $_ := set $conf "website" (dict "base_url" $v.config.baseUrl) -}}
{{- end -}}
{{- if $v.sentry.existingSecret -}}
{{- $_ := set $conf "sentry" (include "acoustid.sentrySettings" . | fromYaml) -}}
{{- end -}}
{{- toYaml $conf -}}
{{- end -}}

{{/* The chart's settings plus `config.extra` (validateValues refuses overlaps). */}}
{{- define "acoustid.confSections" -}}
{{- $conf := include "acoustid.confSectionsWithoutExtra" . | fromYaml -}}
{{- range $section, $keys := .Values.config.extra -}}
{{- $_ := set $conf $section (merge (get $conf $section | default dict) (deepCopy $keys)) -}}
{{- end -}}
{{- toYaml $conf -}}
{{- end -}}

{{- define "acoustid.conf" -}}
# Rendered by the acoustid-stack chart; keys as in acoustid.conf.dist. Secrets are not here:
# each comes from a mounted file named by an ACOUSTID_*_FILE variable.
{{- range $section, $keys := include "acoustid.confSections" . | fromYaml }}

[{{ $section }}]
{{- range $key, $value := $keys }}
{{ $key }} = {{ $value }}
{{- end }}
{{- end }}
{{- end -}}

{{/* `[sentry]` settings other than the DSN (a mounted file), as key -> value. */}}
{{- define "acoustid.sentrySettings" -}}
traces_sample_rate: {{ .Values.sentry.tracesSampleRate }}
{{- with .Values.sentry.environment }}
environment: {{ . }}
{{- end }}
{{- end -}}

{{/* Error reporting of a pod without acoustid.conf (the index): `[sentry]` as ACOUSTID_SENTRY_*
variables and the DSN file, mounted by acoustid.sentryVolume(Mount). */}}
{{- define "acoustid.sentryEnv" -}}
{{- if .Values.sentry.existingSecret }}
- name: ACOUSTID_SENTRY_DSN_FILE
  value: /etc/acoustid/secrets/sentry-dsn
{{- range $key, $value := include "acoustid.sentrySettings" . | fromYaml }}
- name: ACOUSTID_SENTRY_{{ upper $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "acoustid.sentryVolumeMount" -}}
{{- if .Values.sentry.existingSecret }}
- name: secrets
  mountPath: /etc/acoustid/secrets
  readOnly: true
{{- end }}
{{- end -}}

{{- define "acoustid.sentryVolume" -}}
{{- with .Values.sentry }}{{ if .existingSecret }}
- name: secrets
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .existingSecretKey }}
        path: sentry-dsn
{{- end }}{{ end }}
{{- end -}}
