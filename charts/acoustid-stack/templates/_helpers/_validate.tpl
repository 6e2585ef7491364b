{{/* Collects every problem with the values and fails once, naming each key and the fix. */}}
{{- define "acoustid.validateValues" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- if not $v.database.host -}}
{{- $errors = append $errors "database.host: required; set the PostgreSQL read-write host (e.g. --set database.host=acoustid-db-rw)" -}}
{{- end -}}
{{- if and (not $v.redis.host) (not $v.redis.sentinels) -}}
{{- $errors = append $errors "redis.host: required unless redis.sentinels is set; set the Redis host" -}}
{{- end -}}
{{- if not $v.nats.servers -}}
{{- $errors = append $errors "nats.servers: required; list the NATS URLs (e.g. [nats://nats:4222])" -}}
{{- end -}}
{{- range $component := list "api" "web" "worker" -}}
{{- $as := (index $v $component).autoscaling -}}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) -}}
{{- $errors = append $errors (printf "%s.autoscaling.minReplicas: %d is above maxReplicas %d; raise maxReplicas or lower minReplicas" $component (int $as.minReplicas) (int $as.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- range $name, $auth := dict "database" $v.database.auth "redis" $v.redis.auth "nats" $v.nats.auth "website" $v.website.auth -}}
{{- if and $auth.password $auth.existingSecret -}}
{{- $errors = append $errors (printf "%s.auth: both password and existingSecret are set; keep only existingSecret" $name) -}}
{{- end -}}
{{- end -}}
{{- $snap := $v.index.snapshots -}}
{{- if and $snap.enabled (eq $snap.target "s3") -}}
{{- if not $snap.s3.bucket -}}
{{- $errors = append $errors "index.snapshots.s3.bucket: required when index.snapshots.target is s3" -}}
{{- end -}}
{{- if not $snap.s3.existingSecret -}}
{{- $errors = append $errors "index.snapshots.s3.existingSecret: required when index.snapshots.target is s3; create a Secret with an AWS credentials file" -}}
{{- end -}}
{{- end -}}
{{- $managed := dict -}}
{{- range $section, $keys := include "acoustid.confSectionsWithoutExtra" . | fromYaml -}}
{{- $_ := set $managed $section $keys -}}
{{- end -}}
{{- range $section, $keys := $v.config.extra -}}
{{- range $key, $_ := $keys -}}
{{- if hasKey (get $managed $section | default dict) $key -}}
{{- $errors = append $errors (printf "config.extra.%s.%s: set by the chart from its own values; remove it from config.extra" $section $key) -}}
{{- end -}}
{{- if regexMatch "(password|secret|dsn)(_file)?$" $key -}}
{{- $root := first (splitList "." $section) -}}
{{- $fix := "" -}}
{{- if eq $section "sentry" -}}
{{- $fix = "put the DSN in a Secret and set sentry.existingSecret (and sentry.existingSecretKey)" -}}
{{- else if has $root (list "database" "redis" "nats" "website") -}}
{{- $fix = printf "put it in a Secret and set %s.auth.existingSecret (and %s.auth.existingSecretKey)" $root $root -}}
{{- else -}}
{{- $fix = "the chart has no Secret value for it" -}}
{{- end -}}
{{- $errors = append $errors (printf "config.extra.%s.%s: secrets must not go into the ConfigMap; %s" $section $key $fix) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nInvalid values:\n  - %s" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
