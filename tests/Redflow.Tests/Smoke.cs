namespace Redflow.Tests; public class Smoke { [Xunit.Fact] public void Works() {} }
