#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { architectureFrom, existingDataFrom, meshFrom, regionFrom } from '../lib/context';
import { issuerFromContext } from '../lib/constructs/issuer';
import { CpisStack } from '../lib/cpis-stack';
import { applyNag } from '../lib/nag';

const app = new App();

// Optional context:
//   -c domainName=api.cpis.example.org -c certificateArn=arn:aws:acm:...   custom domain
//   -c cpis:placeholderCode=true   synthesise without cargo-lambda (tests, cfn-lint)
//   -c stackName=Cpis              the stack's name (default Cpis)
//   -c cpis:architecture=x86_64    build and run the functions on x86_64 (default arm64)
//   -c cpis:region=eu-west-2       the region (default eu-west-2; never the AWS profile's)
//   -c cpis:allowRegion=<region>   deploy to a region outside the allow-list (lib/context.ts)
//   -c cpis:issuer=cognito -c cpis:issuerDomainPrefix=<prefix> -c cpis:issuerClients=<clients.json>
//                                  the stack's own token issuer (README, "First credentials")
//   -c cpis:existingTableName=… -c cpis:existingAuditTableName=… -c cpis:existingDataKeyArn=…
//   -c cpis:existingPseudonymSecretArn=…   deploy onto retained or restored data (README, "Runbook")
//   -c cpis:meshSecretArn=… -c cpis:meshUrl=https://…   MESH on: mesh-poll and ASN files (README,
//                                  "MESH on AWS"); -c cpis:meshWorkflowUpload|Ack|Asn=… the workflow ids
const domainName = app.node.tryGetContext('domainName') as string | undefined;
const certificateArn = app.node.tryGetContext('certificateArn') as string | undefined;
if ((domainName && !certificateArn) || (!domainName && certificateArn)) {
  throw new Error('domainName and certificateArn go together: give both or neither');
}
const placeholder = app.node.tryGetContext('cpis:placeholderCode');

new CpisStack(app, (app.node.tryGetContext('stackName') as string | undefined) ?? 'Cpis', {
  description: 'cpis: Child Protection - Information Sharing (HTTP API, Lambda, DynamoDB, SQS, SNS)',
  env: {
    account: process.env.CDK_DEFAULT_ACCOUNT,
    region: regionFrom(app.node.tryGetContext('cpis:region')),
  },
  placeholderCode: placeholder === true || placeholder === 'true',
  architecture: architectureFrom(app.node.tryGetContext('cpis:architecture')),
  customDomain: domainName && certificateArn ? { domainName, certificateArn } : undefined,
  existingData: existingDataFrom((key) => app.node.tryGetContext(key)),
  mesh: meshFrom((key) => app.node.tryGetContext(key)),
  issuer: issuerFromContext(
    app.node.tryGetContext('cpis:issuer'),
    app.node.tryGetContext('cpis:issuerDomainPrefix'),
    app.node.tryGetContext('cpis:issuerClients'),
  ),
});

applyNag(app);
