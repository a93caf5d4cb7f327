import { actionsOn, logicalId, statementsOf, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const secretId = () => logicalId(s.stack, s.stack.node.findChild('PortalOidcClientSecret') as never);

describe('the portal (functions/portal, lib/stack/portal.ts)', () => {
  test('its issuer and client id are parameters; the rest have defaults', () => {
    s.template.hasParameter('PortalOidcIssuer', { Type: 'String', AllowedPattern: '^https://.+$' });
    s.template.hasParameter('PortalOidcClientId', { Type: 'String', MinLength: 1 });
    s.template.hasParameter('PortalOidcUserinfo', { Default: 'false', AllowedValues: ['true', 'false'] });
    for (const name of ['PortalOidcScopes', 'PortalOidcClaims']) {
      s.template.hasParameter(name, { Type: 'String', Default: '' });
    }
    // ViewUrl is now optional: by default the ASN links go to the portal.
    s.template.hasParameter('ViewUrl', { Default: '', AllowedPattern: '^(https://.+)?$' });
  });

  test('the client secret is in Secrets Manager, under the data key, read by the portal alone', () => {
    const secret = s.template.findResources('AWS::SecretsManager::Secret')[secretId()];
    expect(secret.Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [logicalId(s.stack, s.stack.dataKey), 'Arn'] });
    const readers = Object.keys(s.stack.functions).filter((crate) =>
      actionsOn(s, crate, secretId()).includes('secretsmanager:GetSecretValue'),
    );
    expect(readers).toEqual(['portal']);
    const portalSecrets = statementsOf(s, 'portal')
      .filter((st) => JSON.stringify(st.Action).includes('secretsmanager:'))
      .map((st) => st.Resource);
    expect(portalSecrets).toEqual([{ Ref: logicalId(s.stack, s.stack.pseudonymSecret) }, { Ref: secretId() }]);
  });

  test('the outputs name the portal, the redirect URI to register and the secret to fill', () => {
    const outputs = s.template.toJSON().Outputs;
    expect(JSON.stringify(outputs.PortalRedirectUri.Value)).toContain('/portal/sign-in/callback');
    expect(outputs.PortalOidcClientSecretArn.Value).toEqual({ Ref: secretId() });
    expect(JSON.stringify(outputs.PortalUrl.Value)).toContain('/portal');
  });

  test('cookies need HTTPS: the redirect base is the API\'s https URL', () => {
    const fn = s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, s.stack.functions.portal.function)];
    const base = fn.Properties.Environment.Variables.CPIS_OIDC_REDIRECT_BASE;
    expect(base['Fn::Join'][1][0]).toBe('https://');
  });
});
