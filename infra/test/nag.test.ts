import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { applyNag } from '../lib/nag';
import { synth, Synthesised } from './helpers';

const NAG = Match.stringLikeRegexp('AwsSolutions-.*|HIPAA.Security-.*');

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

describe('cdk-nag (AwsSolutions and HIPAA.Security)', () => {
  test('no unsuppressed error', () => {
    const errors = Annotations.fromStack(s.stack).findError('*', NAG);
    expect(errors.map((e) => `${e.id}: ${e.entry.data}`)).toEqual([]);
  });

  test('no unsuppressed warning either', () => {
    const warnings = Annotations.fromStack(s.stack).findWarning('*', NAG);
    expect(warnings.map((w) => `${w.id}: ${w.entry.data}`)).toEqual([]);
  });

  test('the same custom-domain stack is clean too', () => {
    const d = synth({
      customDomain: {
        domainName: 'api.cpis.example.org',
        certificateArn: 'arn:aws:acm:eu-west-2:111122223333:certificate/00000000-0000-0000-0000-000000000000',
      },
    });
    expect(Annotations.fromStack(d.stack).findError('*', NAG)).toEqual([]);
  });

  test('every suppression gives a written reason', () => {
    const template = s.template.toJSON();
    const suppressions: { id: string; reason: string }[] = [];
    const collect = (metadata: { cdk_nag?: { rules_to_suppress?: { id: string; reason: string }[] } }) =>
      suppressions.push(...(metadata?.cdk_nag?.rules_to_suppress ?? []));
    collect(template.Metadata ?? {});
    for (const resource of Object.values(template.Resources) as { Metadata?: object }[]) {
      collect(resource.Metadata ?? {});
    }
    expect(suppressions.length).toBeGreaterThan(0);
    for (const { id, reason } of suppressions) {
      expect(id).toMatch(/^(AwsSolutions|HIPAA\.Security)-/);
      expect(reason.trim().length).toBeGreaterThanOrEqual(30);
    }
  });

  test('the packs really run: a bare queue and a table without PITR are reported', () => {
    const app = new App();
    const stack = new Stack(app, 'Probe');
    new sqs.Queue(stack, 'Bare', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    new dynamodb.Table(stack, 'NoPitr', { partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING } });
    applyNag(app);
    const errors = Annotations.fromStack(stack).findError('*', NAG);
    const ids = errors.map((e) => String(e.entry.data).split(':')[0]);
    expect(ids).toEqual(expect.arrayContaining(['AwsSolutions-SQS3', 'AwsSolutions-SQS4']));
    expect(ids).toContain('HIPAA.Security-DynamoDBPITREnabled');
  });
});
