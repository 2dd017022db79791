{{/* Names ------------------------------------------------------------------------- */}}

{{- define "nodewarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nodewarden.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nodewarden.webhookName" -}}{{ include "nodewarden.fullname" . | trunc 55 | trimSuffix "-" }}-webhook{{- end }}
{{- define "nodewarden.controllerName" -}}{{ include "nodewarden.fullname" . | trunc 52 | trimSuffix "-" }}-controller{{- end }}
{{- define "nodewarden.agentName" -}}{{ include "nodewarden.fullname" . | trunc 57 | trimSuffix "-" }}-agent{{- end }}

{{/* Names the code fixes (core/names.py, webhook/settings.py): the chart must use the same. */}}
{{- define "nodewarden.pauseConfigMap" -}}nodewarden-control{{- end }}
{{- define "nodewarden.leaderLease" -}}nodewarden-controller{{- end }}

{{/* Labels ------------------------------------------------------------------------ */}}

{{- define "nodewarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodewarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nodewarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nodewarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nodewarden
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "nodewarden.webhookSelectorLabels" -}}
{{ include "nodewarden.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "nodewarden.controllerSelectorLabels" -}}
{{ include "nodewarden.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "nodewarden.agentSelectorLabels" -}}
{{ include "nodewarden.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{/* The image ---------------------------------------------------------------------- */}}

{{- define "nodewarden.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The policy: the values' document, or the copy of rules/remediation.yaml. -------- */}}

{{- define "nodewarden.policy" -}}
{{- if .Values.policy }}{{ .Values.policy }}{{ else }}{{ .Files.Get "files/remediation.yaml" }}{{ end }}
{{- end }}

{{/* Alert names the policy handles (alerts.names), with the code's default. */}}
{{- define "nodewarden.policyAlertNames" -}}
{{- $policy := include "nodewarden.policy" . | fromYaml }}
{{- $alerts := $policy.alerts | default dict }}
{{- $names := $alerts.names | default (list "NodeNotReady" "NodeLeaseStale" "KubeNodeNotReady" "KubeNodeUnreachable") }}
{{- join "|" $names }}
{{- end }}

{{/* "true" when some node may be recovered by deleting its pods and VolumeAttachments
     (strategy ResourceDeletion in defaults or a group): only then may the controller delete them. */}}
{{- define "nodewarden.usesResourceDeletion" -}}
{{- $policy := include "nodewarden.policy" . | fromYaml }}
{{- $uses := false }}
{{- $defaults := $policy.defaults | default dict }}
{{- if eq ($defaults.strategy | default "OutOfServiceTaint") "ResourceDeletion" }}{{ $uses = true }}{{ end }}
{{- range ($policy.groups | default list) }}
{{- if eq (.strategy | default "") "ResourceDeletion" }}{{ $uses = true }}{{ end }}
{{- end }}
{{- $uses }}
{{- end }}

{{/* Secrets ------------------------------------------------------------------------ */}}

{{- define "nodewarden.alertmanagerSecret" -}}
{{- .Values.auth.alertmanager.existingSecret | default (printf "%s-alertmanager" (include "nodewarden.fullname" .)) }}
{{- end }}
{{- define "nodewarden.operatorSecret" -}}
{{- .Values.auth.operators.existingSecret | default (printf "%s-operator-tokens" (include "nodewarden.fullname" .)) }}
{{- end }}
{{- define "nodewarden.peerSecret" -}}
{{- .Values.peerSecret.existingSecret | default (printf "%s-peer-secret" (include "nodewarden.fullname" .)) }}
{{- end }}
{{- define "nodewarden.signingSecret" -}}
{{- .Values.fenceOrderKeys.existingSecret | default (printf "%s-fence-order-signing-key" (include "nodewarden.fullname" .)) }}
{{- end }}
{{- define "nodewarden.verifySecret" -}}
{{- .Values.fenceOrderKeys.existingPublicKeySecret | default (printf "%s-fence-order-public-keys" (include "nodewarden.fullname" .)) }}
{{- end }}
{{- define "nodewarden.tlsSecret" -}}
{{- .Values.webhook.tls.existingSecret | default (printf "%s-tls" (include "nodewarden.webhookName" .)) }}
{{- end }}

{{/* A key of a Secret already in the cluster, decoded; "" when there is none (first
     install, or rendering without a cluster). Argument: (list $ name key). */}}
{{- define "nodewarden.existingSecretValue" -}}
{{- $root := index . 0 }}
{{- $secret := lookup "v1" "Secret" $root.Release.Namespace (index . 1) }}
{{- if and $secret $secret.data }}
{{- $value := index $secret.data (index . 2) }}
{{- if $value }}{{ b64dec $value }}{{ end }}
{{- end }}
{{- end }}

{{/* The PEM public key of an Ed25519 private key (PEM). Helm has no function for it, so a
     certificate is made with the key and its SubjectPublicKeyInfo (ASN.1: 30 2a 30 05 06 03
     2b 65 70 03 21 00 + the 32-byte key) is cut out of the certificate's DER. A test checks
     the result against the cryptography library. */}}
{{- define "nodewarden.ed25519PublicKey" -}}
{{- $cert := genSelfSignedCertWithKey "nodewarden-fence-order-key" nil nil 1 . }}
{{- $der := $cert.Cert | replace "-----BEGIN CERTIFICATE-----" "" | replace "-----END CERTIFICATE-----" "" | nospace | b64dec }}
{{- $prefix := "0*0\x05\x06\x03+ep\x03!\x00" }}
{{- $parts := splitList $prefix $der }}
{{- if ne (len $parts) 2 }}{{ fail "fenceOrderKeys.privateKey: not an Ed25519 private key (PKCS#8 PEM)" }}{{ end }}
{{- $key := substr 0 32 (index $parts 1) }}
{{- if ne (len $key) 32 }}{{ fail "fenceOrderKeys.privateKey: not an Ed25519 private key (PKCS#8 PEM)" }}{{ end -}}
-----BEGIN PUBLIC KEY-----
{{ printf "%s%s" $prefix $key | b64enc }}
-----END PUBLIC KEY-----
{{ end }}

{{/* Mount paths: the settings below point at these. */}}
{{- define "nodewarden.paths" -}}
policy: /etc/nodewarden/policy/remediation.yaml
alertmanagerToken: /etc/nodewarden/alertmanager/token
operatorTokens: /etc/nodewarden/operators/tokens
peerSecret: /etc/nodewarden/peer/secret
signingKey: /etc/nodewarden/fence-order/private.pem
publicKeys: /etc/nodewarden/order-keys/public.pem
agentConfig: /etc/nodewarden/agent/agent.yaml
tls: /etc/nodewarden/tls
metricsDir: /var/run/nodewarden/metrics
agentState: /var/lib/nodewarden
fenceCredentials: /etc/nodewarden/fence-credentials
{{- end }}

{{/* The webhook's base URL inside the cluster. */}}
{{- define "nodewarden.webhookURL" -}}
{{ ternary "https" "http" .Values.webhook.tls.enabled }}://{{ include "nodewarden.webhookName" . }}.{{ .Release.Namespace }}.svc:{{ .Values.webhook.port }}
{{- end }}

{{/* Settings maps to environment variables: (list prefix map). Values are quoted strings. */}}
{{- define "nodewarden.settingsEnv" -}}
{{- $prefix := index . 0 }}
{{- range $key, $value := index . 1 }}
- name: {{ printf "%s%s" $prefix (upper $key) }}
  value: {{ ternary $value ($value | toJson) (kindIs "string" $value) | quote }}
{{- end }}
{{- end }}

{{/* The agents' settings file (docs/node-agent.md): the chart's own settings, then agent.config. */}}
{{- define "nodewarden.agentConfig" -}}
{{- $paths := include "nodewarden.paths" . | fromYaml }}
{{- $owned := dict
  "namespace" .Release.Namespace
  "listen" (printf "0.0.0.0:%d" (int .Values.agent.port))
  "peer_secret_file" $paths.peerSecret
  "order_public_keys_file" $paths.publicKeys
  "watchdog_path" .Values.agent.watchdog.device
  "reboot_fallback_enabled" .Values.agent.rebootFallback.enabled
  "reboot_fallback_command" .Values.agent.rebootFallback.command
  "kubelet_restart_command" .Values.agent.kubeletRestart.command
  "peer_cache_file" (printf "%s/peers.json" $paths.agentState)
  "log_level" .Values.logLevel }}
{{- range $key, $_ := $owned }}
{{- if hasKey $.Values.agent.config $key }}
{{- fail (printf "agent.config.%s is set by the chart; use the chart's own value for it" $key) }}
{{- end }}
{{- end -}}
# Node agent settings (docs/node-agent.md): the chart's own, then agent.config.
{{ toYaml $owned }}
{{- with .Values.agent.config }}
{{ toYaml . }}
{{- end }}
{{- end }}
