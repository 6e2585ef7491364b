{{/* Objects api, web, worker and cron share: (dict "root" $ "component" "api" "port" 5000);
worker and cron pass "metricsPort" instead of "port". */}}

{{- define "acoustid.deployment" -}}
{{- $values := index .root.Values .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "acoustid.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" . | nindent 4 }}
spec:
  {{- if not (and $values.autoscaling $values.autoscaling.enabled) }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "acoustid.selectorLabels" . | nindent 6 }}
  # Surge first: a rollout never lowers capacity (cron: leader election keeps the surge pod
  # on standby).
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "acoustid.labels" . | nindent 8 }}
      annotations:
        # Roll pods when the rendered configuration changes.
        checksum/config: {{ include "acoustid.conf" .root | sha256sum }}
    spec:
      {{- include "acoustid.podCommon" .root | nindent 6 }}
      {{- include "acoustid.topologySpread" . | nindent 6 }}
      # Longer than the app's shutdown delay: health turns 503 first, then requests drain.
      terminationGracePeriodSeconds: 60
      containers:
        {{- include "acoustid.appContainer" (dict "root" .root "component" .component "port" .port "metricsPort" .metricsPort "resources" $values.resources) | nindent 8 }}
      volumes:
        {{- include "acoustid.appVolumes" (dict "root" .root) | nindent 8 }}
{{- end -}}

{{- define "acoustid.hpa" -}}
{{- $values := index .root.Values .component -}}
{{- if $values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "acoustid.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "acoustid.componentName" . }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
  {{- with $values.autoscaling.scaleDownStabilizationSeconds }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ . }}
      policies:
        # Shed at most a quarter of the workers per minute.
        - type: Percent
          value: 25
          periodSeconds: 60
  {{- end }}
{{- end }}
{{- end -}}

{{/* maxUnavailable 1 never blocks a node drain, even at one replica. */}}
{{- define "acoustid.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "acoustid.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "acoustid.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "acoustid.service" -}}
{{- $values := index .root.Values .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "acoustid.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" . | nindent 4 }}
spec:
  type: {{ $values.service.type }}
  selector:
    {{- include "acoustid.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $values.service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{/* api and web accept traffic only from the ingress controller (and Prometheus, helm test). */}}
{{- define "acoustid.serverNetworkPolicy" -}}
{{- if .root.Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "acoustid.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "acoustid.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ .root.Values.networkPolicy.ingressNamespace }}
        {{- if .root.Values.serviceMonitor.enabled }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ .root.Values.networkPolicy.monitoringNamespace }}
        {{- end }}
        - podSelector:
            matchLabels:
              {{- include "acoustid.selectorLabels" (dict "root" .root "component" "test") | nindent 14 }}
      ports:
        - port: http
          protocol: TCP
{{- end }}
{{- end -}}
