import { Aspects, IAspect } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';

/**
 * cdk-nag's AwsSolutions and HIPAA.Security packs on everything under
 * `scope`. Findings are errors on synthesis; every suppression sits next to
 * the resource it concerns, with its reason.
 */
export function applyNag(scope: IConstruct): void {
  const packs: IAspect[] = [
    new AwsSolutionsChecks({ verbose: true }),
    new HIPAASecurityChecks({ verbose: true }),
  ];
  for (const pack of packs) {
    Aspects.of(scope).add(pack);
  }
}
