/** Unit tests of the pure TypeScript modules (layout, badges, API client, list window, chart). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/labextension/test'],
  transform: { '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/labextension/test/tsconfig.json' }] }
};
